"""How long a cell will train, for the sweep's ETA: the cost model, scaled to what was measured.

The cost model is the local launcher's (`rsscale.launch.resources.local_cell_seconds`: FLOPs and
pixels per image times images per epoch times epochs). Its absolute seconds hold for one CPU core
only, so the estimate scales it by the median ratio measured/modelled over the cells seen so far
(the live view passes completed cells' whole wall time, start-up and evaluation included; before
any cell completes, the running cells' projected training time). The self-sizing issue replaces
this with a calibrated model behind the same signature.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def cell_work(config: Mapping[str, Any]) -> float | None:
    """The cost model's seconds for one cell config (None when it cannot be costed)."""
    from rsscale.launch.resources import local_cell_seconds

    try:
        work = local_cell_seconds(config)
    except (KeyError, TypeError, ValueError):
        return None
    return work if work > 0 else None


def cell_seconds_estimate(
    config: Mapping[str, Any], measured: Sequence[tuple[Mapping[str, Any], float]]
) -> float | None:
    """Seconds `config` will train, from `measured` (config, seconds) pairs; None without any."""
    work = cell_work(config)
    rates = [s / w for c, s in measured if s > 0 and (w := cell_work(c))]
    if work is None or not rates:
        return None
    return statistics.median(rates) * work
