"""How long a cell will train, for the sweep's ETA: scaled from cells already measured.

A placeholder cost model (the self-sizing issue replaces it with a calibrated one, same signature):
a cell's work is its model's FLOPs per image at `data.train_res` times its epochs (times
`data.train_subset` when set, the images per epoch), and seconds per unit of work are the median
over the cells measured so far (completed records' training time, running cells' projected time).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def cell_work(config: Mapping[str, Any]) -> float | None:
    """The cost model's work units of one cell config (None when the model cannot be costed)."""
    from rsscale.models import model_cost

    try:
        flops = model_cost(dict(config["model"]), int(config["data"]["train_res"]), 10)["flops_per_image"]
        epochs = float(config["recipe"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None
    subset = config["data"].get("train_subset")
    return float(flops) * epochs * (float(subset) if isinstance(subset, int | float) and subset else 1.0)


def cell_seconds_estimate(
    config: Mapping[str, Any], measured: Sequence[tuple[Mapping[str, Any], float]]
) -> float | None:
    """Seconds `config` will train, from `measured` (config, seconds) pairs; None without any."""
    work = cell_work(config)
    rates = [s / w for c, s in measured if s > 0 and (w := cell_work(c))]
    if work is None or not rates:
        return None
    return statistics.median(rates) * work
