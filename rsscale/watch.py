"""`rsscale-status DIR --watch`: follow a sweep or a tuning study until nothing runs, then its table.

Here, above rsscale.launch and rsscale.tune, because it serves both (launch never imports tune).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rsscale.launch.cell_states import format_table
from rsscale.launch.live import watch_sweep
from rsscale.layout import StudyLayout


def watch(path: str | Path, every_s: float, mode: str = "auto") -> int:
    """The live view (lines every `every_s` s without a terminal); the final table at the end."""
    if every_s <= 0:
        print(f"rsscale.status: error: --every={every_s} must be positive", file=sys.stderr)
        return 2
    if StudyLayout(path).meta.exists():
        from rsscale.tune.live import watch_study  # optuna: only for studies
        from rsscale.tune.trial_states import format_trials, trial_rows

        watch_study(path, every_s, mode)
        print(format_trials(*trial_rows(path)))
        return 0
    try:
        rows = watch_sweep(path, every_s, mode)
    except (FileNotFoundError, ValueError) as e:
        print(f"rsscale.status: error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0
