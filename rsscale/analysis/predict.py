"""Predicted error at a target compute, with its bootstrap interval, for every fitted path.

``analyze --predict-at C`` answers "what error would this scaling path reach at C FLOPs per
image?": each FLOPs path's fitted law (the held-out choice by default) evaluated at C, with the
percentile interval of its bootstrap refits (the same resamples as the parameter intervals).
``extrapolation`` is C over the path's largest fitted compute: above 1 the answer is an
extrapolation, and its interval covers only the fit's noise, not a change of regime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.fit import FitResult


def predict_at(fit: FitResult, C: float, level: float = 0.9) -> dict[str, float]:
    """Point prediction and ``level`` bootstrap interval of the error at compute ``C``."""
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"target compute must be a positive number, got {C}")
    if fit.law == "none":
        return {"error": float("nan"), "error_lo": float("nan"), "error_hi": float("nan")}
    Cs = np.array([float(C)])
    lo, hi = fit.band(Cs, level)
    return {"error": float(fit.predict(Cs)[0]), "error_lo": float(lo[0]), "error_hi": float(hi[0])}


def prediction_table(paths: list[Any], targets: list[float], level: float = 0.9) -> pd.DataFrame:
    """One row per (FLOPs path, target): strategy, epochs, resolution, law, prediction, interval."""
    rows = []
    for p in paths:
        if p.measure != "flops":
            continue
        for C in targets:
            rows.append(
                {
                    "strategy": p.strategy,
                    "epochs": p.epochs,
                    "resolution": p.resolution,
                    "law": p.fit.law,
                    "target_flops": float(C),
                    **predict_at(p.fit, C, level),
                    "extrapolation": float(C / p.fit.c_range[1]) if p.fit.law != "none" else float("nan"),
                    "heldout_rmse": p.fit.selection.get("heldout_rmse", float("nan")),
                }
            )
    return pd.DataFrame(rows)
