"""The end of a sweep: the analysis report, written by the report writer itself (never by calling
another command line); what it prints is what `python -m rsscale.analyze SWEEP_DIR` prints."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rsscale.layout import SweepLayout


def write_sweep_report(sweep_dir: Path) -> None:
    """The analysis report of one sweep into SWEEP_DIR/report; a failed analysis never loses the sweep
    (one line says why; the results stand)."""
    try:
        from rsscale.analysis.load import LoadError, load_results
        from rsscale.analysis.report import NoUsableCells, write_report
        from rsscale.analysis.study import Settings
    except ImportError as e:
        print(f"rsscale: analysis unavailable: {e}")
        return
    out = SweepLayout(sweep_dir).report
    t0 = time.time()
    try:
        df = load_results([str(sweep_dir)])
        notes = list(df.attrs.get("notes", []))
        for n in notes:
            print(f"analyze: note: {n}", file=sys.stderr)
        rec = write_report(df, str(out), Settings(), figures=True, sources=[str(sweep_dir)])
    except LoadError as e:
        print(f"analyze: {e}", file=sys.stderr)
        print("rsscale: analysis did not complete (exit 2); the results above stand")
        return
    except NoUsableCells as e:
        print(f"analyze: {e}; wrote {out / 'summary.csv'} only", file=sys.stderr)
        print("rsscale: analysis did not complete (exit 1); the results above stand")
        return
    except Exception as e:  # noqa: BLE001 - a failed analysis never loses the sweep
        print(f"rsscale: analysis failed: {type(e).__name__}: {e}")
        return
    print(
        f"analyze: {rec['n_usable']} of {rec['n_cells']} cells analysed in {time.time() - t0:.1f} s; "
        f"report in {out}"
    )
    for n in rec.get("notes", []):
        if n not in notes:
            print(f"analyze: note: {n}", file=sys.stderr)
    for q in (rec.get("questions") or {}).values():  # rsscale.analysis.questions, in order
        for line in q.get("summary") or []:
            print(f"  {line}")
