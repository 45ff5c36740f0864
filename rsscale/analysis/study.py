"""The study of one dataset: its settings, its scaling paths and their fits (the questions read these).

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

:func:`fit_paths` fits every path of one dataset into an :class:`Analysis`; the questions
(:mod:`rsscale.analysis.questions`) then read it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.fit import CurveData, FitResult, compare_estimators, fit_curves
from rsscale.analysis.laws import KNOWN_CLASSES, random_guess_error
from rsscale.analysis.regimes import regime_info, regime_keys
from rsscale.analysis.selection import CANDIDATES, fit_selected

MEASURES = {"flops": "FLOPs", "train_step_s": "train-step time"}


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
    # rsscale.analysis.questions: each question's Answer, and its compact JSON form with `resolve`
    answers: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)

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
            "questions": self.questions,
        }


def num_key(v: float) -> str:
    v = float(v)
    return str(int(v)) if v == int(v) else f"{v:g}"


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


def fit_paths(
    df: pd.DataFrame, st: Settings | None = None, dataset: str = ""
) -> tuple[Analysis, pd.DataFrame]:
    """Every scaling path of the usable cells of one dataset, fitted; returns the analysis and
    the usable cells (with their `regime` column) that the questions read."""
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
    # the estimator comparison (estimators.csv): FLOPs paths with enough points
    compare = [c.key[1] == "flops" and np.unique(c.C).size >= 6 for c in curves]
    fit = fit_selected if st.law == "auto" else fit_curves
    kw = {"compare": compare, "holdout_frac": st.holdout_frac} if st.law == "auto" else {"law": st.law}
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
        label = f"{strategy} path, {MEASURES[m]}, regime {g}" + (f", res {num_key(r)}" if r else "")
        for n in f.notes:
            grouped.setdefault(re.sub(r"\d+(\.\d+)?", "#", n), []).append((label, n))
    for items in grouped.values():
        if len(items) == 1:
            an.notes.append(f"fit {items[0][0]}: {items[0][1]}")
        else:
            eg = "; ".join(lbl for lbl, _ in items[:3])
            an.notes.append(f"{len(items)} fits: {items[0][1]} (e.g. {eg})")
    if st.law == "auto":
        # the law choice's own held-out fits already hold every law's error on the comparison
        # fold: reuse them (a stable sort keeps the paths' order within each law)
        order = {c: i for i, c in enumerate(CANDIDATES)}
        an.estimators = sorted((r for f in fits for r in f.comparison), key=lambda r: order[r["law"]])
    else:
        ecurves = [c for c, k in zip(curves, compare) if k]
        an.estimators = compare_estimators(
            ecurves, holdout_frac=st.holdout_frac, huber_delta=st.huber_delta, e0=an.e0
        )
    return an, df
