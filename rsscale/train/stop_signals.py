"""Which signals stop a cell at the next step boundary (torch-free: the local driver imports it too).

The backend that started the cell says so in its environment (rsscale.launch.backends: a local
cell's driver stops it with SIGTERM; under SLURM, SIGTERM is the kill and only USR2 counts), so
that training never needs to know which backend runs it.
"""

from __future__ import annotations

import os
import signal

#: comma-separated signal names, e.g. "SIGTERM"; empty or unset: none besides the scheduler's USR2
STOP_SIGNALS_ENV = "RSSCALE_STOP_SIGNALS"


def cell_stop_signals() -> tuple[int, ...]:
    """Signals on which a cell checkpoints and stops, besides the scheduler's USR2 (from the
    environment its backend set)."""
    raw = os.environ.get(STOP_SIGNALS_ENV, "")
    out = []
    for name in (n.strip().upper() for n in raw.split(",")):
        if not name:
            continue
        try:
            out.append(int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]))
        except KeyError:
            raise ValueError(f"{STOP_SIGNALS_ENV}={raw!r}: {name} is not a signal name") from None
    return tuple(out)
