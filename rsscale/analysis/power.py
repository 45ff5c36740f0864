"""Telling "no difference" from "not enough data": equivalence tests and the study's power.

A bootstrap that finds no winner can mean two things: the two strategies are the same within a
margin that matters, or the study is too small to say. Users need to know which, and what it
would take to decide. Given the point estimate ``s`` of a difference and its bootstrap
resamples ``sb``:

- **equivalence** (two one-sided tests on the bootstrap distribution): the confidence that the
  difference lies inside ``(-margin, +margin)`` is ``min(P(sb < margin), P(sb > -margin))``;
  the verdict is ``equivalent`` when it reaches the threshold and no side won;
- **minimal detectable difference**: with bootstrap standard error ``se``, the smallest true
  difference that the study would call a winner (beyond ``min_effect`` at the threshold's
  confidence) with 80% probability, ``min_effect + (z_threshold + z_0.8) se``; and the
  smallest margin within which a true zero difference would be called ``equivalent`` with 80%
  probability, ``(z_threshold + z_0.9) se`` (both one-sided tests must pass);
- **what would resolve it**: if the point estimate holds, a winner needs
  ``se' = (|s| - min_effect) / z_threshold`` and equivalence needs
  ``se' = (margin - |s|) / z_threshold``; the standard error falls as 1/sqrt(replicates), so the
  data must grow by ``(se / se')^2``: that many times the seeds of every cell (or the cells per
  path), given for each verdict within reach. This is an extrapolation from one study.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

Z_POWER_80 = NormalDist().inv_cdf(0.8)
Z_POWER_90 = NormalDist().inv_cdf(0.9)


def equivalence_confidence(sb: np.ndarray, centre: float, margin: float) -> float:
    """TOST on bootstrap resamples: min(P(sb < centre + margin), P(sb > centre - margin))."""
    sb = sb[np.isfinite(sb)]
    if sb.size == 0 or not margin > 0:
        return 0.0
    return float(min(np.mean(sb < centre + margin), np.mean(sb > centre - margin)))


def power_summary(
    s: float,
    sb: np.ndarray,
    *,
    centre: float = 0.0,
    min_effect: float,
    margin: float,
    threshold: float,
    n_cells: int | None = None,
    names: tuple[str, str] = ("depth", "width"),
) -> dict[str, Any]:
    """Standard error, minimal detectable difference and the replication that would resolve the
    verdict, for a difference `s` (relative to `centre`) with bootstrap resamples `sb`."""
    sb = sb[np.isfinite(sb)]
    se = float(np.std(sb, ddof=1)) if sb.size > 1 else float("nan")
    zt = NormalDist().inv_cdf(min(max(threshold, 0.5), 0.999999))
    out: dict[str, Any] = {
        "se": se,
        "minimal_detectable_difference": min_effect + (zt + Z_POWER_80) * se,
        "smallest_equivalence_margin": (zt + Z_POWER_90) * se,
        "equivalence_margin": margin,
        "min_effect": min_effect,
    }
    if not math.isfinite(se) or se <= 0:
        out["to_resolve"], out["nearest"] = {}, None
        return out
    gap = abs(s - centre)
    options = []
    if gap > min_effect:
        options.append((names[0] if s < centre else names[1], (zt * se / (gap - min_effect)) ** 2))
    if gap < margin:
        options.append(("equivalent", (zt * se / (margin - gap)) ** 2))
    out["to_resolve"] = {verdict: _replication(factor, n_cells) for verdict, factor in options}
    out["nearest"] = min(options, key=lambda o: o[1])[0] if options else None
    return out


def _replication(factor: float, n_cells: int | None) -> dict[str, Any]:
    factor = max(1.0, factor)
    res: dict[str, Any] = {"data_factor": factor, "more_seeds_per_cell": max(0, math.ceil(factor - 1e-9) - 1)}
    if n_cells:
        res["cells_per_path"] = math.ceil(factor * n_cells)
        res["cells_per_path_now"] = int(n_cells)
    return res


def describe(p: dict[str, Any], unit: str = "log error") -> str:
    """One sentence for the report: the study's power and what would resolve it."""
    if not p or not math.isfinite(p.get("se", float("nan"))):
        return ""
    text = (
        f"minimal detectable difference {p['minimal_detectable_difference']:.3f} {unit}; "
        f"smallest margin it could show equivalence in {p['smallest_equivalence_margin']:.3f} "
        f"(margin {p['equivalence_margin']:g}, bootstrap se {p['se']:.3f})"
    )
    for verdict, r in (p.get("to_resolve") or {}).items():
        if r["data_factor"] <= 1.0:
            continue
        more = f"{r['more_seeds_per_cell']} more seed(s) of every cell"
        if "cells_per_path" in r:
            more += f" or about {r['cells_per_path']} cells per path (now {r['cells_per_path_now']})"
        text += f"; `{verdict}` (if the estimate holds) needs about {r['data_factor']:.1f}x the data: {more}"
    return text
