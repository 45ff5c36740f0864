# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this in the entry point's module)
"""`python -m rsscale.status SWEEP_DIR`: one row per cell (status, progress, best minival top-1,
attempts, error class), from the manifest, the run records and one batched sacct call."""

from __future__ import annotations

import argparse
import json
import sys

from rsscale.cli import parse_args
from rsscale.launch.cell_states import cell_rows, format_table
from rsscale.launch.manifest import Manifest
from rsscale.layout import StudyLayout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rsscale.status", description=__doc__)
    p.add_argument("sweep_dir")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.add_argument("--watch", action="store_true", help="follow the running cells until none is left")
    p.add_argument("--every", type=float, default=10.0, help="--watch without a terminal: seconds per block")
    args = parse_args(p, argv)
    if args.watch:
        from rsscale.watch import watch

        return watch(args.sweep_dir, args.every)
    if StudyLayout(args.sweep_dir).meta.exists():  # a tuning study: one row per trial
        from rsscale.tune.trial_states import format_trials, trial_rows  # optuna: only for studies

        head, rows = trial_rows(args.sweep_dir)
        print(
            json.dumps({**head, "trials": rows}, indent=1, default=str)
            if args.json
            else format_trials(head, rows)
        )
        return 0
    try:
        manifest = Manifest.load_for_status(args.sweep_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"rsscale.status: error: {e}", file=sys.stderr)
        return 2
    rows = cell_rows(manifest)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
