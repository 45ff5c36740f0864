"""**Depth vs width.** For one (r, E) the two fits are compared on a log-spaced grid over the
compute range both paths cover: ``d(C) = log e_depth(C) - log e_width(C)`` (negative: depth
better at equal compute). The statistic is the mean of ``d`` over that range; for an epoch
budget it is the mean over the resolutions where both paths exist. The bootstrap over cells
(each path resampled independently, ``n_boot`` times) gives its distribution; ``confidence`` is
the fraction of resamples in which the point estimate's winner wins by more than ``min_effect``
(in log error). Below ``threshold`` (0.9 by default) or without an overlapping compute range
the answer is ``inconclusive``. Where along the compute axis each strategy wins is reported
from the pointwise bootstrap fraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.fit import FitResult
from rsscale.analysis.power import equivalence_confidence, power_summary
from rsscale.analysis.study import MEASURES, Analysis, Settings, num_key


def _intervals(C: np.ndarray, mask: np.ndarray) -> list[list[float]]:
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        if (not m or i == len(mask) - 1) and start is not None:
            end = i if m else i - 1
            out.append([float(C[start]), float(C[end])])
            start = None
    return out


def _decide(
    s: float, sb: np.ndarray, st: Settings, names=("depth", "width"), n_cells: int | None = None
) -> dict[str, Any]:
    """Winner, `equivalent` (TOST inside +-equivalence_margin) or `inconclusive`, with the power
    of the study (rsscale.analysis.power)."""
    sb = sb[np.isfinite(sb)]
    if not np.isfinite(s) or sb.size == 0:
        return {"winner": "inconclusive", "confidence": None, "reason": "no usable bootstrap resamples"}
    q = (1 - st.ci_level) / 2
    if s < 0:
        win, conf = names[0], float(np.mean(sb < -st.min_effect))
    else:
        win, conf = names[1], float(np.mean(sb > st.min_effect))
    eq = equivalence_confidence(sb, 0.0, st.equivalence_margin)
    winner = win if conf >= st.threshold else ("equivalent" if eq >= st.threshold else "inconclusive")
    out = {
        "winner": winner,
        "confidence": conf if winner != "equivalent" else eq,
        "leader": win,
        "leader_confidence": conf,
        "equivalence_confidence": eq,
        "mean_log_error_diff": float(s),
        "mean_log_error_diff_ci": [float(np.quantile(sb, q)), float(np.quantile(sb, 1 - q))],
        "p_depth_better": float(np.mean(sb < 0)),
        "n_boot_used": int(sb.size),
        "power": power_summary(
            s,
            sb,
            min_effect=st.min_effect,
            margin=st.equivalence_margin,
            threshold=st.threshold,
            n_cells=n_cells,
            names=names,
        ),
    }
    if winner == "inconclusive":
        out["reason"] = (
            f"{win} leads but with confidence {conf:.2f} < threshold {st.threshold}, and "
            f"equivalence within +-{st.equivalence_margin:g} has confidence {eq:.2f}: underpowered"
        )
    return out


def compare_pair(fd: FitResult, fw: FitResult, st: Settings) -> tuple[dict[str, Any], dict | None]:
    """Depth-path fit vs width-path fit over their common compute range (see module doc)."""
    res: dict[str, Any] = {
        "n_depth": fd.n_unique,
        "n_width": fw.n_unique,
        "law_depth": fd.law,
        "law_width": fw.law,
    }
    if fd.law == "none" or fw.law == "none":
        res.update(winner="inconclusive", confidence=None, reason="a path could not be fitted")
        return res, None
    if min(fd.n_unique, fw.n_unique) < st.min_path_points:
        res.update(
            winner="inconclusive",
            confidence=None,
            reason=f"a path has fewer than {st.min_path_points} distinct compute values",
        )
        return res, None
    lo = max(fd.c_range[0], fw.c_range[0])
    hi = min(fd.c_range[1], fw.c_range[1])
    if not hi > lo * 1.01:
        res.update(
            winner="inconclusive",
            confidence=None,
            reason="the depth and width paths do not overlap in compute",
            compute_range=None,
        )
        return res, None
    C = np.geomspace(lo, hi, st.grid_points)
    d = fd.log_err(C) - fw.log_err(C)
    bd = fd.log_err(C, boot=True)
    bw = fw.log_err(C, boot=True)
    B = min(bd.shape[0], bw.shape[0])
    db = bd[:B] - bw[:B]
    sb = db.mean(1)
    res.update(_decide(float(d.mean()), sb, st, n_cells=min(fd.n_unique, fw.n_unique)))
    res["compute_range"] = [float(lo), float(hi)]
    ok = np.isfinite(db).all(1)
    if ok.any():
        pd_ = (db[ok] < 0).mean(0)
        res["depth_wins_over"] = _intervals(C, pd_ >= st.threshold)
        res["width_wins_over"] = _intervals(C, pd_ <= 1 - st.threshold)
    curve = {"C": C, "d": d, "db": db}
    return res, curve


def depth_vs_width(an: Analysis, df: pd.DataFrame) -> dict[str, Any]:
    st = an.settings
    out: dict[str, Any] = {}
    for g, info in an.regimes.items():  # keyed by regime (epochs, training-set size)
        e = info["epochs"]
        entry: dict[str, Any] = {"epochs": e, "train_size": info["train_size"]}
        for m in MEASURES:
            by_res: dict[str, Any] = {}
            sbs, ss = [], []
            ranges = []
            for r in sorted(df[df["regime"] == g]["resolution"].unique()):
                pd_ = an.find("depth", m, float(e), float(r), regime=g)
                pw = an.find("width", m, float(e), float(r), regime=g)
                if pd_ is None or pw is None:
                    by_res[num_key(r)] = {
                        "winner": "inconclusive",
                        "confidence": None,
                        "reason": "no depth path" if pd_ is None else "no width path",
                    }
                    continue
                res, curve = compare_pair(pd_.fit, pw.fit, st)
                by_res[num_key(r)] = res
                if curve is not None:
                    an.dvw_curves[(g, m, float(r))] = curve
                    ss.append(float(curve["d"].mean()))
                    sbs.append(curve["db"].mean(1))
                    ranges.append(res["compute_range"])
            if ss:
                B = min(len(s) for s in sbs)
                sb = np.mean(np.stack([s[:B] for s in sbs]), axis=0)
                ns = [min(v.get("n_depth", 0), v.get("n_width", 0)) for v in by_res.values() if "power" in v]
                agg = _decide(float(np.mean(ss)), sb, st, n_cells=min(ns) if ns else None)
                agg["compute_range"] = [min(r[0] for r in ranges), max(r[1] for r in ranges)]
                agg["n_resolutions"] = len(ss)
            else:
                reasons = sorted({v.get("reason", "") for v in by_res.values() if v.get("reason")})
                agg = {
                    "winner": "inconclusive",
                    "confidence": None,
                    "reason": "; ".join(reasons) or "no data",
                }
            agg["by_resolution"] = by_res
            agg["compute"] = m
            if m == "flops":
                entry.update(agg)
            else:
                entry["time"] = agg
        out[g] = entry
    return out
