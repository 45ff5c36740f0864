"""Benchmark of the analysis: N synthetic cells, B bootstrap resamples, wall time per stage.

    .venv/bin/python scripts/bench_analysis.py [--cells 10000] [--n-boot 1000] [--figures]

The grid is a 10 x 10 x 10 x 10 (depth x width x resolution x epochs) factorial for 10,000
cells (other sizes: the nearest 4-D factorial). Prints one line per stage and the total; the
"analysis" figure (load + fits + bootstrap + recommendations + Pareto + tables) is the one the
60 s budget applies to; --figures adds the PNG/SVG rendering, timed separately.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.analysis import figures, synthetic  # noqa: E402
from rsscale.analysis.load import load_results  # noqa: E402
from rsscale.analysis.pareto import mark_pareto  # noqa: E402
from rsscale.analysis.recommend import Settings, analyze_dataset  # noqa: E402
from rsscale.analysis.report import write_report  # noqa: E402

try:  # a tree before the solver's threads (to time the same table on an older commit)
    from rsscale.analysis.threads import n_threads  # noqa: E402
except ImportError:  # pragma: no cover

    def n_threads() -> int:
        return 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--figures", action="store_true", help="also time the full report with figures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-report", action="store_true", help="skip the full report (a second analysis)")
    a = ap.parse_args()
    k = max(2, round(a.cells**0.25))
    depths = tuple(int(v) for v in np.geomspace(26, 400, k).round())
    widths = tuple(float(v) for v in np.geomspace(0.25, 3.0, k).round(3))
    res = tuple(int(v) for v in np.geomspace(64, 512, k).round())
    epochs = tuple(float(v) for v in np.geomspace(5, 350, k).round())
    laws = {
        e: synthetic.AdditiveLaw(alpha=0.15 + 0.6 * i / max(k - 1, 1), beta=0.6, gamma=0.5, r0=32)
        for i, e in enumerate(epochs)
    }
    table = synthetic.make_table(depths, widths, res, epochs, laws=laws, seed=a.seed)
    n = len(table)
    print(f"bench: {n} cells ({k}^4 grid), {a.n_boot} bootstrap resamples, {os.cpu_count()} CPUs visible")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.parquet"
        table.to_parquet(path)
        times = {}
        t0 = time.perf_counter()
        c0 = time.process_time()
        df = load_results(path)
        times["load + normalise"] = time.perf_counter() - t0
        st = Settings(n_boot=a.n_boot, seed=a.seed)
        t = time.perf_counter()
        an = analyze_dataset(df, st, "synthetic")
        times["fits + bootstrap + recommendations"] = time.perf_counter() - t
        t = time.perf_counter()
        mark_pareto(df)
        times["pareto flags"] = time.perf_counter() - t
        total = time.perf_counter() - t0
        cpu = time.process_time() - c0
        for name, v in times.items():
            print(f"bench: {name:40s} {v:7.2f} s")
        print(
            f"bench: {'analysis total':40s} {total:7.2f} s   (budget 60 s: {'OK' if total < 60 else 'OVER'})"
        )
        # CPU seconds of this process (all its threads): on a shared machine, less sensitive to
        # other work than the wall time; with one thread (RSSCALE_THREADS=1) it bounds the quiet
        # single-core wall time from below
        print(f"bench: {'analysis CPU time (all threads)':40s} {cpu:7.2f} s   ({n_threads()} solver threads)")
        nb = sum(p.fit.boot_ok.size for p in an.paths)
        print(
            f"bench: {len(an.paths)} path fits, {nb} bootstrap refits, "
            f"{sum(p.fit.converged for p in an.paths)} converged point fits"
        )
        if not a.no_report:
            t = time.perf_counter()
            write_report(df, Path(tmp) / "report", st, figures=False)
            print(f"bench: {'full report without figures':40s} {time.perf_counter() - t:7.2f} s")
        if a.figures:
            t = time.perf_counter()
            files = figures.all_figures(an, df, Path(tmp) / "figs")
            print(f"bench: {'figures (' + str(len(files)) + ' files)':40s} {time.perf_counter() - t:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
