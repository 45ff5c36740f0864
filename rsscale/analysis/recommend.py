"""The paper's scaling recommendations, recomputed from data (nothing here is hard-coded).

**Scaling paths.** In a depth x width (x resolution) grid, scaling is read as paths from a base
model (by default the smallest depth and the smallest width of the grid):

- depth path at (resolution r, epochs E): cells with width = base width, depth varying;
- width path at (r, E): cells with depth = base depth, width varying;
- resolution path at E: cells with depth = base depth and width = base width, resolution varying.

Each path is fitted with the saturating law ``e(C) = e_inf + b C^-c`` in log space
(:mod:`rsscale.analysis.fit`), with C = FLOPs per image, and separately C = measured train-step
time. A path with fewer than 5 distinct compute values gets the log-linear form
``log e = a - c log C`` instead (noted), and one with fewer than ``min_path_points`` distinct
values is not compared.

**Depth vs width.** For one (r, E) the two fits are compared on a log-spaced grid over the
compute range both paths cover: ``d(C) = log e_depth(C) - log e_width(C)`` (negative: depth
better at equal compute). The statistic is the mean of ``d`` over that range; for an epoch
budget it is the mean over the resolutions where both paths exist. The bootstrap over cells
(each path resampled independently, ``n_boot`` times) gives its distribution; ``confidence`` is
the fraction of resamples in which the point estimate's winner wins by more than ``min_effect``
(in log error). Below ``threshold`` (0.9 by default) or without an overlapping compute range
the answer is ``inconclusive``. Where along the compute axis each strategy wins is reported
from the pointwise bootstrap fraction.

**Resolution.** Per epoch budget, two estimates of the exponent ``k`` of the compute-optimal
resolution ``res ~ C^k``, both from all usable cells of that budget:

1. (primary) the joint saturating law in two forms (:mod:`rsscale.analysis.joint`): additive
   ``e = E + A_d d^-a_d + A_w w^-a_w + A_r r^-a_r`` (Chinchilla's approach 3 with one term per
   axis: depth and width complement each other) and product ``e = E + A d^-a_d w^-a_w + B r^-a_r``
   (one compound model-size term: they substitute), with log FLOPs regressed linearly on the log
   axes (``log C ~ g . u``). On iso-FLOPs lines the optimum moves as
   ``k = (1/a_r) / sum_i (g_i / a_i)`` (additive) or ``a / (g_r a + a_r)``, ``a = max_i a_i / g_i``
   (product). The forms are weighed by 5-fold held-out error; k is their weighted mean and its
   bootstrap their mixture, so model uncertainty widens the interval; ``form`` says which form
   the data favour;
2. (cross-check) a quadratic surface of log error in the centred log axes, whose iso-FLOPs
   minimum moves linearly with log C (closed form from the Lagrange conditions); a local,
   second-order description with no functional form assumed.

Axes with fewer than 3 values are left out (they cannot be scaled); fewer than 3 resolutions
gives ``inconclusive``. The bootstrap (cells resampled within each epoch budget, both models
refitted per resample, vectorised) gives the CIs; the headline ``k`` is the mean over epoch
budgets. Verdict against EfficientNet's compound rule ``log 1.15 / log 2 = 0.2016``: ``slower``
when both estimators put >= ``threshold`` of their bootstrap mass below 0.2016, ``not_slower``
when both put it above, otherwise ``inconclusive`` (confidence = the smaller of the two). The
exponent of the released B0-B7 table (resolution against the FLOPs proxy d w^2 r^2) is reported
too. On synthetic grids the two estimators disagree where the data hold little information
about the resolution term, and requiring agreement turned those cases into ``inconclusive``.

A third, simpler estimate is reported as ``frontier``: the slope of log(resolution) against
log(FLOPs) over the cells on the error-vs-FLOPs Pareto frontier (Chinchilla's approach 1). It is
pulled toward the grid's own geometry (``grid_exponent``, log resolution range over log FLOPs
range) whenever the optimum would leave the grid on any axis, so it is not used for the verdict.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.fit import CurveData, FitResult, compare_estimators, fit_curves
from rsscale.analysis.joint import fit_joint
from rsscale.analysis.laws import KNOWN_CLASSES, random_guess_error
from rsscale.analysis.power import equivalence_confidence, power_summary
from rsscale.analysis.regimes import cross_regime_verdict, regime_info, regime_keys
from rsscale.analysis.selection import fit_selected

EFFICIENTNET_EXPONENT = math.log(1.15) / math.log(2.0)
# Released EfficientNet B0-B7 (width, depth, resolution) coefficients.
EFFICIENTNET_TABLE = [
    ("B0", 1.0, 1.0, 224),
    ("B1", 1.0, 1.1, 240),
    ("B2", 1.1, 1.2, 260),
    ("B3", 1.2, 1.4, 300),
    ("B4", 1.4, 1.8, 380),
    ("B5", 1.6, 2.2, 456),
    ("B6", 1.8, 2.6, 528),
    ("B7", 2.0, 3.1, 600),
]
MEASURES = {"flops": "FLOPs", "train_step_s": "train-step time"}


def efficientnet_table_exponent() -> float:
    """Slope of log(resolution) on log(FLOPs proxy d*w^2*r^2) over the released B0-B7."""
    C = np.array([d * w * w * r * r for _, w, d, r in EFFICIENTNET_TABLE], float)
    r = np.array([row[3] for row in EFFICIENTNET_TABLE], float)
    return float(np.polyfit(np.log(C), np.log(r), 1)[0])


@dataclass
class Settings:
    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.9
    threshold: float = 0.9
    min_effect: float = 0.01
    # |difference| below which two strategies count as the same (`equivalent`): 0.05 in log error
    # is 5% relative error (10.0% vs 10.5%), too little to choose a scaling strategy by
    equivalence_margin: float = 0.05
    # the same for the resolution exponent k around EfficientNet's 0.2016
    resolution_margin: float = 0.05
    # "auto": each path's law chosen by held-out extrapolation (rsscale/analysis/selection.py)
    law: str = "auto"
    # class count for the ceiling law's e0 = 1 - 1/num_classes (None: from the table's
    # num_classes column or the dataset name, else e0 = 1)
    num_classes: int | None = None
    huber_delta: float | str = "auto"
    min_path_points: int = 3
    grid_points: int = 50
    base_depth: float | None = None
    base_width: float | None = None
    holdout_frac: float = 0.2
    min_resolutions_verdict: int = 4

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PathFit:
    strategy: str  # depth | width | resolution
    measure: str  # flops | train_step_s
    epochs: float
    resolution: float | None  # None for resolution paths
    fixed: dict[str, float]
    cell_ids: list[str]
    fit: FitResult
    regime: str = ""  # rsscale.analysis.regimes: (epochs, training-set size)

    def row(self) -> dict[str, Any]:
        r = {
            "strategy": self.strategy,
            "compute": self.measure,
            "epochs": self.epochs,
            "regime": self.regime,
            "resolution": self.resolution,
            **{f"fixed_{k}": v for k, v in self.fixed.items()},
        }
        r.update(self.fit.as_row())
        return r


@dataclass
class Analysis:
    """Everything computed for one dataset."""

    dataset: str
    settings: Settings
    base: dict[str, float]
    paths: list[PathFit] = field(default_factory=list)
    depth_vs_width: dict[str, Any] = field(default_factory=dict)
    resolution: dict[str, Any] = field(default_factory=dict)
    estimators: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resolution_frontier: pd.DataFrame | None = None
    resolution_boot: np.ndarray | None = None
    dvw_curves: dict[tuple, dict[str, np.ndarray]] = field(default_factory=dict)  # (regime, measure, res)
    regimes: dict[str, dict[str, Any]] = field(default_factory=dict)  # rsscale.analysis.regimes
    cross_regime: dict[str, Any] = field(default_factory=dict)
    e0: float | None = None  # the ceiling law's random-guess error (None: unknown, 1.0 used)

    def fits_table(self) -> pd.DataFrame:
        """One row per fitted path; the saturating law's columns are always present (NaN for
        the log-linear fallback, which has no e_inf)."""
        ft = pd.DataFrame([p.row() for p in self.paths])
        for k in ("e_inf", "b", "c"):
            for suffix in ("", "_lo", "_hi"):
                if k + suffix not in ft.columns:
                    ft[k + suffix] = np.nan
        return ft

    def find(
        self,
        strategy: str,
        measure: str,
        epochs: float,
        resolution: float | None = None,
        regime: str | None = None,
    ) -> PathFit | None:
        for p in self.paths:
            if (
                p.strategy == strategy
                and p.measure == measure
                and p.epochs == epochs
                and (resolution is None or p.resolution == resolution)
                and (regime is None or p.regime == regime)
            ):
                return p
        return None

    def recommendations(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "depth_vs_width": self.depth_vs_width,
            "regimes": self.regimes,
            "cross_regime": self.cross_regime,
            "resolution": self.resolution,
            "base": self.base,
            "settings": self.settings.as_dict(),
            "notes": self.notes,
        }


def _key(v: float) -> str:
    v = float(v)
    return str(int(v)) if v == int(v) else f"{v:g}"


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


def _paths(df: pd.DataFrame, st: Settings) -> tuple[dict[str, float], list[tuple]]:
    base_d = st.base_depth if st.base_depth is not None else float(df["depth"].min())
    base_w = st.base_width if st.base_width is not None else float(df["width"].min())
    base = {"depth": base_d, "width": base_w}
    specs = []
    for g, ge in df.groupby("regime", sort=False):  # a regime: (epochs, training-set size)
        e = float(ge["epochs"].iloc[0])
        for r, gr in ge.groupby("resolution", sort=True):
            dp = gr[np.isclose(gr["width"].astype(float), base_w)]
            wp = gr[np.isclose(gr["depth"].astype(float), base_d)]
            specs.append(("depth", e, float(r), {"width": base_w}, dp, g))
            specs.append(("width", e, float(r), {"depth": base_d}, wp, g))
        rp = ge[np.isclose(ge["depth"].astype(float), base_d) & np.isclose(ge["width"].astype(float), base_w)]
        specs.append(("resolution", e, None, {"depth": base_d, "width": base_w}, rp, g))
    return base, specs


def analyze_dataset(df: pd.DataFrame, st: Settings | None = None, dataset: str = "") -> Analysis:
    """Fits and recommendations for the usable cells of one dataset."""
    st = st or Settings()
    df = df[df["usable"]].copy()
    if df.empty:
        raise ValueError(f"dataset {dataset!r}: no completed cells to analyse")
    df["regime"] = regime_keys(df)
    info = regime_info(df, df["regime"])
    df = df.sort_values("regime", key=lambda k: k.map(list(info).index), kind="stable")
    base, specs = _paths(df, st)
    an = Analysis(dataset=dataset, settings=st, base=base, regimes=info)
    curves, meta = [], []
    for strategy, e, r, fixed, cells, g in specs:
        for m in MEASURES:
            sub = cells[np.isfinite(cells[m].to_numpy(float)) & (cells[m].to_numpy(float) > 0)]
            if sub[m].nunique() < 2:
                continue
            curves.append(
                CurveData((strategy, m, e, r, g), sub[m].to_numpy(float), sub["error"].to_numpy(float))
            )
            meta.append((strategy, m, e, r, fixed, sub["cell_id"].astype(str).tolist(), g))
    if not curves:
        an.notes.append(
            "no scaling path with two or more distinct compute values (is depth, width or "
            "resolution varied at the base model?)"
        )
    ncls = st.num_classes
    if ncls is None and "num_classes" in df.columns and df["num_classes"].notna().any():
        ncls = int(df["num_classes"].dropna().iloc[0])
    ncls = ncls if ncls is not None else KNOWN_CLASSES.get(dataset)
    an.e0 = random_guess_error(ncls)
    fit = fit_selected if st.law == "auto" else fit_curves
    kw = {} if st.law == "auto" else {"law": st.law}
    fits = fit(
        curves,
        n_boot=st.n_boot,
        seed=st.seed,
        ci_level=st.ci_level,
        huber_delta=st.huber_delta,
        e0=an.e0,
        **kw,
    )
    grouped: dict[str, list[tuple[str, str]]] = {}
    for (strategy, m, e, r, fixed, ids, g), f in zip(meta, fits):
        an.paths.append(PathFit(strategy, m, e, r, fixed, ids, f, regime=g))
        label = f"{strategy} path, {MEASURES[m]}, regime {g}" + (f", res {_key(r)}" if r else "")
        for n in f.notes:
            grouped.setdefault(re.sub(r"\d+(\.\d+)?", "#", n), []).append((label, n))
    for items in grouped.values():
        if len(items) == 1:
            an.notes.append(f"fit {items[0][0]}: {items[0][1]}")
        else:
            eg = "; ".join(lbl for lbl, _ in items[:3])
            an.notes.append(f"{len(items)} fits: {items[0][1]} (e.g. {eg})")
    # estimator comparison by extrapolation (FLOPs paths with enough points)
    ecurves = [c for c in curves if c.key[1] == "flops" and np.unique(c.C).size >= 6]
    an.estimators = compare_estimators(
        ecurves, holdout_frac=st.holdout_frac, huber_delta=st.huber_delta, e0=an.e0
    )
    an.depth_vs_width = depth_vs_width(an, df)
    an.cross_regime = cross_regime_verdict(an.depth_vs_width, info)
    an.resolution = resolution_recommendation(an, df)
    return an


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
                    by_res[_key(r)] = {
                        "winner": "inconclusive",
                        "confidence": None,
                        "reason": "no depth path" if pd_ is None else "no width path",
                    }
                    continue
                res, curve = compare_pair(pd_.fit, pw.fit, st)
                by_res[_key(r)] = res
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


def _frontier_masks(lc: np.ndarray, err: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B, n) frontier membership of each cell in each resample; lc sorted ascending."""
    present = counts > 0
    em = np.where(present, err[None, :], np.inf)
    run = np.minimum.accumulate(em, axis=1)
    prev = np.concatenate([np.full((em.shape[0], 1), np.inf), run[:, :-1]], axis=1)
    return present & (em < prev)


def _slope_sums(lc, lr, mask):
    n = mask.sum(1)
    sx = (mask * lc).sum(1)
    sy = (mask * lr).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(n > 0, sx / np.maximum(n, 1), 0)
        my = np.where(n > 0, sy / np.maximum(n, 1), 0)
    dx = (lc[None, :] - mx[:, None]) * mask
    dy = (lr[None, :] - my[:, None]) * mask
    return (dx * dy).sum(1), (dx * dx).sum(1), n


def resolution_exponent(
    df: pd.DataFrame, measure: str, st: Settings, rng: np.random.Generator
) -> tuple[dict[str, Any], pd.DataFrame | None, np.ndarray | None]:
    """Compute-optimal resolution ~ C^k from the error-vs-compute frontier (see module doc)."""
    q = (1 - st.ci_level) / 2
    sub = df[np.isfinite(df[measure].to_numpy(float)) & (df[measure].to_numpy(float) > 0)]
    groups, by_e = [], {}
    for e, g in sub.groupby("epochs", sort=True):
        if g["resolution"].nunique() < 2:
            by_e[_key(e)] = {"exponent": None, "reason": "only one resolution at this epoch budget"}
            continue
        g = g.sort_values(measure, kind="stable")
        groups.append((e, g))
    if not groups:
        return (
            {"exponent": None, "reason": "the grid does not vary resolution", "by_epochs": by_e},
            None,
            None,
        )
    B = st.n_boot
    Sxy = np.zeros(B)
    Sxx = np.zeros(B)
    Sxy0 = Sxx0 = 0.0
    nfront = 0
    frontier_rows = []
    for e, g in groups:
        lc = np.log(g[measure].to_numpy(float))
        lr = np.log(g["resolution"].to_numpy(float))
        err = g["error"].to_numpy(float)
        n = len(g)
        m0 = _frontier_masks(lc, err, np.ones((1, n)))
        sxy0, sxx0, n0 = _slope_sums(lc, lr, m0)
        Sxy0 += sxy0[0]
        Sxx0 += sxx0[0]
        nfront += int(n0[0])
        frontier_rows.append(g[m0[0]])
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=B) if B else np.zeros((0, n))
        mb = _frontier_masks(lc, err, counts)
        sxy, sxx, _ = _slope_sums(lc, lr, mb)
        Sxy += sxy
        Sxx += sxx
        ke = sxy0[0] / sxx0[0] if sxx0[0] > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            kb = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1), np.nan)
        kb = kb[np.isfinite(kb)]
        by_e[_key(e)] = {
            "exponent": float(ke) if np.isfinite(ke) else None,
            "ci": [float(np.quantile(kb, q)), float(np.quantile(kb, 1 - q))] if kb.size else None,
            "n_frontier_cells": int(n0[0]),
            "frontier_resolutions": sorted({int(v) for v in g[m0[0]]["resolution"]}),
        }
    front = pd.concat(frontier_rows)
    out: dict[str, Any] = {"by_epochs": by_e, "n_frontier_cells": nfront, "compute": measure}
    # what the slope would be if the frontier ran from the cheapest, lowest-resolution cell to the
    # dearest, highest-resolution one: the estimate is pulled toward this when the grid binds
    lr_all = np.log(sub["resolution"].to_numpy(float))
    lc_all = np.log(sub[measure].to_numpy(float))
    out["grid_exponent"] = float((lr_all.max() - lr_all.min()) / max(lc_all.max() - lc_all.min(), 1e-12))
    if Sxx0 <= 0 or nfront < 3:
        out.update(exponent=None, reason="fewer than 3 compute-optimal cells with distinct compute")
        return out, front, None
    k = Sxy0 / Sxx0
    with np.errstate(invalid="ignore", divide="ignore"):
        kb = np.where(Sxx > 0, Sxy / np.where(Sxx > 0, Sxx, 1), np.nan)
    kb_ok = kb[np.isfinite(kb)]
    out["exponent"] = float(k)
    out["ci"] = [float(np.quantile(kb_ok, q)), float(np.quantile(kb_ok, 1 - q))] if kb_ok.size else None
    out["ci_level"] = st.ci_level
    out["n_boot_used"] = int(kb_ok.size)
    if front["resolution"].nunique() < 2:
        out["note"] = "every compute-optimal cell has the same resolution"
    return out, front, kb


AXES = ("depth", "width", "resolution")


def _surface_design(U: np.ndarray) -> np.ndarray:
    """Full quadratic design in the centred log axes U (n, m): 1, u_i, u_i u_j (i <= j)."""
    i, j = np.triu_indices(U.shape[1])
    return np.concatenate([np.ones((len(U), 1)), U, U[:, i] * U[:, j]], axis=1)


def _weighted_lstsq(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Batched weighted least squares: X (n, p), y (n,), W (B, n) -> (B, p); NaN rows if singular."""
    n, p = X.shape
    XX = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    A = (W @ XX).reshape(-1, p, p)
    b = W @ (X * y[:, None])
    scale = np.sqrt(np.maximum(np.einsum("bii->bi", A), 1e-300))
    As = A / scale[:, :, None] / scale[:, None, :]
    ok = np.linalg.cond(As) < 1e10
    sol = np.full((A.shape[0], p), np.nan)
    if ok.any():
        sol[ok] = np.linalg.solve(As[ok], (b[ok] / scale[ok])[..., None])[..., 0] / scale[ok]
    return sol


def _surface_exponents(U, y, lc, W):
    """Compute-optimal d log(res) / d log C from a quadratic log-error surface, per weight row.

    log e ~ quadratic(U); log C ~ g . U (both fitted with weights W). On the constraint
    g . u = s the quadratic has its minimum where [H g; g' 0] [u; -lam] = [-b; s], so
    du*/ds = K^-1 [0..0, 1] and k = du*_res / ds. Rows where the surface has no minimum on the
    constraint (not positive definite there) get NaN."""
    m = U.shape[1]
    beta = _weighted_lstsq(_surface_design(U), y, W)
    gfit = _weighted_lstsq(np.concatenate([np.ones((len(U), 1)), U], 1), lc, W)
    g = gfit[:, 1:]
    B = W.shape[0]
    H = np.zeros((B, m, m))
    i, j = np.triu_indices(m)
    for t, (a, c) in enumerate(zip(i, j)):
        H[:, a, c] += beta[:, 1 + m + t]
        H[:, c, a] += beta[:, 1 + m + t]
    K = np.zeros((B, m + 1, m + 1))
    K[:, :m, :m] = H
    K[:, :m, m] = g
    K[:, m, :m] = g
    rhs = np.zeros((B, m + 1, 1))
    rhs[:, m, 0] = 1.0
    k = np.full(B, np.nan)
    ok = np.isfinite(K).all((1, 2))
    # positive definite on the constraint plane: H projected onto the null space of g
    gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    P = np.eye(m)[None] - gn[:, :, None] * gn[:, None, :]
    Hp = np.where(ok[:, None, None], P @ np.where(np.isfinite(H), H, 0.0) @ P, 0.0)
    ev = np.linalg.eigvalsh(Hp)
    ok &= (ev > 1e-9).sum(1) >= m - 1
    if ok.any():
        du = np.linalg.solve(K[ok], rhs[ok])[:, :m, 0]
        k[ok] = du[:, m - 1]
    return k


def resolution_surface(
    df: pd.DataFrame, measure: str, st: Settings, rng: np.random.Generator
) -> dict[str, Any]:
    """Compute-optimal resolution exponent per epoch budget from the joint law (primary) and
    a quadratic log-error surface (cross-check); see the module doc."""
    q = (1 - st.ci_level) / 2
    sub = df[np.isfinite(df[measure].to_numpy(float)) & (df[measure].to_numpy(float) > 0)]
    by_e: dict[str, Any] = {}
    kbs, ks, qbs, qs = [], [], [], []
    B = st.n_boot

    def ci(v):
        v = v[np.isfinite(v)]
        return [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))] if v.size else None

    for e, g in sub.groupby("epochs", sort=True):
        if g["resolution"].nunique() < 2:
            by_e[_key(e)] = {"exponent": None, "reason": "resolution does not vary at this epoch budget"}
            continue
        if g["resolution"].nunique() < 3:
            by_e[_key(e)] = {
                "exponent": None,
                "reason": "fewer than 3 resolutions: its exponent cannot be fitted",
            }
            continue
        axes = [a for a in AXES if a != "resolution" and g[a].nunique() >= 3] + ["resolution"]
        npar = 1 + len(axes) + len(axes) * (len(axes) + 1) // 2
        if len(g) < npar + 3:
            by_e[_key(e)] = {"exponent": None, "reason": f"{len(g)} cells for a {npar}-parameter surface"}
            continue
        U = np.log(g[axes].to_numpy(float))
        U = U - U.mean(0)
        y = np.log(g["error"].to_numpy(float))
        lc = np.log(g[measure].to_numpy(float))
        n = len(g)
        W = rng.multinomial(n, np.full(n, 1.0 / n), size=B).astype(float) if B else np.zeros((0, n))
        jr = fit_joint(U, y, lc, W, axes, rng, threshold=st.threshold)
        k0, kb = jr.k, jr.k_boot
        converged = all(f.converged for f in jr.fits.values())
        q0 = _surface_exponents(U, y, lc, np.ones((1, n)))[0]
        qb = _surface_exponents(U, y, lc, W) if B else np.zeros(0)
        entry: dict[str, Any] = {
            "exponent": k0 if np.isfinite(k0) else None,
            "ci": ci(kb) if np.isfinite(k0) else None,
            "axes": axes,
            "n_cells": int(n),
            "form": jr.summary(q),
            "converged": converged,
            "boot_ok_frac": float(np.isfinite(kb).mean()) if B else None,
            "quadratic": {
                "exponent": float(q0) if np.isfinite(q0) else None,
                "ci": ci(qb) if np.isfinite(q0) else None,
            },
        }
        if not converged:
            entry["note"] = "a joint-law fit did not report convergence"
        kk = kb[np.isfinite(kb)]
        if np.isfinite(k0) and kk.size:
            v, conf, why = _res_verdict(
                kb, qb if np.isfinite(q0) else None, st.threshold, st.resolution_margin
            )
            nres = int(g["resolution"].nunique())
            if v != "inconclusive" and nres < st.min_resolutions_verdict:
                v, why = (
                    "inconclusive",
                    (
                        f"only {nres} resolutions (a verdict needs {st.min_resolutions_verdict}): "
                        "the resolution "
                        "term's amplitude and exponent are barely identified"
                    ),
                )
            entry.update(verdict=v, confidence=conf, n_resolutions=nres)
            if why:
                entry["reason"] = why
            ks.append(k0)
            kbs.append(kb)
            if np.isfinite(q0):
                qs.append(q0)
                qbs.append(qb)
        by_e[_key(e)] = entry
    out: dict[str, Any] = {"by_epochs": by_e, "compute": measure}
    if not ks:
        reasons = sorted({v.get("reason", "") for v in by_e.values() if v.get("reason")})
        out.update(exponent=None, reason="; ".join(reasons) or "no data")
        return out
    kb = np.mean(np.stack(kbs), axis=0) if B else np.zeros(0)
    out["exponent"] = float(np.mean(ks))
    out["ci"] = ci(kb)
    out["n_epoch_budgets"] = len(ks)
    out["form"] = favoured_form([v["form"] for v in by_e.values() if "form" in v])
    out["boot"] = kb
    if qs and len(qs) == len(ks):
        qb = np.mean(np.stack(qbs), axis=0) if B else np.zeros(0)
        out["quadratic"] = {"exponent": float(np.mean(qs)), "ci": ci(qb)}
        out["quadratic_boot"] = qb
    return out


def favoured_form(per_budget: list[dict[str, Any]]) -> dict[str, Any]:
    """Which joint form the data favour over all epoch budgets: the one every budget favours,
    else `indistinguishable` (or `mixed` when budgets favour different forms)."""
    fav = [f["favoured"] for f in per_budget]
    decided = {f for f in fav if f in ("additive", "product")}
    if fav and len(set(fav)) == 1:
        overall = fav[0]
    elif len(decided) > 1:
        overall = "mixed"
    else:
        overall = "indistinguishable"
    wp = [f["weights"].get("product") for f in per_budget if "product" in f["weights"]]
    return {
        "favoured": overall,
        "by_budget": fav,
        "mean_weight_product": float(np.mean(wp)) if wp else None,
    }


def _res_verdict(
    kb: np.ndarray, qb: np.ndarray | None, threshold: float, margin: float = 0.0
) -> tuple[str, float, str]:
    """slower / not_slower only when the joint law (kb) and the quadratic cross-check (qb)
    both put >= threshold of their bootstrap mass on the same side of the compound rule;
    `equivalent` when both put it inside +-margin of the rule (TOST); else inconclusive."""
    r = EFFICIENTNET_EXPONENT
    kk = kb[np.isfinite(kb)]
    pa = float(np.mean(kk < r))
    lead = "slower" if pa >= 0.5 else "not_slower"
    conf_a = pa if lead == "slower" else 1 - pa
    if qb is None or not np.isfinite(qb).any():
        return "inconclusive", conf_a, "the quadratic-surface cross-check has no estimate"
    qq = qb[np.isfinite(qb)]
    pq = float(np.mean(qq < r))
    conf_q = pq if lead == "slower" else 1 - pq
    conf = min(conf_a, conf_q)
    if conf >= threshold:
        return lead, conf, ""
    eq = min(equivalence_confidence(kk, r, margin), equivalence_confidence(qq, r, margin))
    if margin > 0 and eq >= threshold:
        return "equivalent", eq, ""
    side = "k < " if lead == "slower" else "k >= "
    return (
        "inconclusive",
        conf,
        f"P({side}{r:.3f}): joint law {conf_a:.2f}, quadratic cross-check {conf_q:.2f}; "
        f"both must reach {threshold} (equivalence within +-{margin:g}: confidence {eq:.2f})",
    )


def resolution_recommendation(an: Analysis, df: pd.DataFrame) -> dict[str, Any]:
    st = an.settings
    rng = np.random.default_rng(st.seed + 7919)
    res = resolution_surface(df, "flops", st, rng)
    fr, front, _ = resolution_exponent(df, "flops", st, rng)
    an.resolution_frontier = front
    kb = res.pop("boot", None)
    qboot = res.pop("quadratic_boot", None)
    an.resolution_boot = kb
    out = {
        "exponent": res.get("exponent"),
        "ci": res.get("ci"),
        "ci_level": st.ci_level,
        "efficientnet_exponent": EFFICIENTNET_EXPONENT,
        "efficientnet_table_exponent": efficientnet_table_exponent(),
        "verdict": "inconclusive",
        "confidence": None,
        "compute": "flops",
        "method": (
            "joint saturating law in depth, width, resolution, additive and product forms "
            "weighed by held-out error; iso-FLOPs optimum"
        ),
        "form": res.get("form"),
        "by_epochs": res.get("by_epochs", {}),
        "quadratic": res.get("quadratic"),
        "frontier": {
            k: fr.get(k) for k in ("exponent", "ci", "n_frontier_cells", "grid_exponent", "reason") if k in fr
        },
    }
    if out["exponent"] is None or kb is None or not np.isfinite(kb).any():
        out["reason"] = res.get("reason", "no bootstrap estimate")
        return out
    kk = kb[np.isfinite(kb)]
    out["p_slower"] = float(np.mean(kk < EFFICIENTNET_EXPONENT))
    out["p_slower_than_table"] = float(np.mean(kk < out["efficientnet_table_exponent"]))
    verdict, conf, why = _res_verdict(kb, qboot, st.threshold, st.resolution_margin)
    out["power"] = power_summary(
        float(out["exponent"]),
        kk,
        centre=EFFICIENTNET_EXPONENT,
        min_effect=0.0,
        margin=st.resolution_margin,
        threshold=st.threshold,
        n_cells=None,
        names=("slower", "not_slower"),
    )
    nres = [v.get("n_resolutions") for v in out["by_epochs"].values() if v.get("n_resolutions")]
    if verdict != "inconclusive" and nres and min(nres) < st.min_resolutions_verdict:
        verdict, why = (
            "inconclusive",
            (
                f"an epoch budget has only {min(nres)} resolutions "
                f"(a verdict needs {st.min_resolutions_verdict})"
            ),
        )
    out.update(verdict=verdict, confidence=conf)
    if why:
        out["reason"] = why
    return out
