"""Which signals stop a cell at the next step boundary (torch-free: the local driver imports it too)."""

from __future__ import annotations

import os
import signal


def is_local_cell() -> bool:
    """This process is a cell of the local launcher (submitit's local executor), not a SLURM job."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "local"


def cell_stop_signals() -> tuple[int, ...]:
    """Signals on which a cell checkpoints and stops, besides the scheduler's USR2: a local cell's
    driver stops it with SIGTERM (rsscale/launch/supervision.py); under SLURM, SIGTERM is the kill."""
    return (signal.SIGTERM,) if is_local_cell() else ()
