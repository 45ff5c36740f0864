"""Pareto frontiers: top-1 (higher is better) against a cost (lower is better).

A cell is Pareto-optimal for a cost when no other cell has lower-or-equal cost and strictly
higher top-1, or strictly lower cost and equal top-1. Frontiers are taken within one dataset and
one epoch budget (a 10-epoch and a 350-epoch cell with the same step time are not the same cost).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COSTS: dict[str, str] = {
    "train_step_s": "train-step time (s per step)",
    "infer_s": "inference latency (s per batch)",
    "flops": "forward FLOPs per image",
    "params": "parameters",
}


def pareto_mask(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Boolean mask of the points on the (min cost, max value) frontier; NaNs are never on it."""
    cost = np.asarray(cost, float)
    value = np.asarray(value, float)
    ok = np.isfinite(cost) & np.isfinite(value)
    out = np.zeros(cost.shape, bool)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    order = idx[np.lexsort((-value[idx], cost[idx]))]  # by cost, ties: best value first
    v = value[order]
    c = cost[order]
    prev_best = np.concatenate([[-np.inf], np.maximum.accumulate(v)[:-1]])
    on = v > prev_best
    # equal cost, equal value duplicates: keep all of them (none dominates the other)
    dup = np.zeros_like(on)
    dup[1:] = (c[1:] == c[:-1]) & (v[1:] == v[:-1])
    on_or_dup = on.copy()
    for i in np.flatnonzero(dup):  # rare; propagates the first copy's status
        on_or_dup[i] = on_or_dup[i - 1]
    out[order] = on_or_dup
    return out


def mark_pareto(
    df: pd.DataFrame, costs: tuple[str, ...] = tuple(COSTS), by: tuple[str, ...] = ("dataset", "epochs")
) -> pd.DataFrame:
    """Add boolean ``pareto_<cost>`` columns (usable cells only; False elsewhere)."""
    df = df.copy()
    for cost in costs:
        col = f"pareto_{cost}"
        df[col] = False
        if cost not in df.columns:
            continue
        use = df[df["usable"]]
        for _, g in use.groupby(list(by), dropna=False, sort=False):
            m = pareto_mask(g[cost].to_numpy(float), g["top1"].to_numpy(float))
            df.loc[g.index[m], col] = True
    return df


def frontier(df: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The Pareto-optimal rows of ``df`` for ``cost``, sorted by cost."""
    m = pareto_mask(df[cost].to_numpy(float), df["top1"].to_numpy(float))
    return df[m].sort_values(cost)
