"""The analysis report: figures, recommendations.md/.json, fitted parameters, summary table.

``write_report(df, out_dir)`` analyses each dataset in ``df`` separately (never pooling two
datasets in one fit) and writes into ``out_dir``::

    recommendations.json   machine-readable recommendations (one entry per question of
                           rsscale.analysis.questions, whose module docs give the method)
    recommendations.md     the same for people, with the method, the notes and the tables
    fits.csv               every fitted scaling path: law, parameters with CIs, convergence
    estimators.csv         held-out extrapolation error of each law on each path
    summary.csv            one row per cell (every status), with pareto_<cost> flags
    figures/*.png, *.svg
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.figures import all_figures
from rsscale.analysis.load import schema_markdown
from rsscale.analysis.mdfmt import fmt as _fmt
from rsscale.analysis.mdfmt import md_table as _md_table
from rsscale.analysis.mdfmt import num as _k
from rsscale.analysis.pareto import COSTS, mark_pareto
from rsscale.analysis.predict import prediction_table
from rsscale.analysis.questions import QUESTIONS
from rsscale.analysis.recommend import analyze_dataset
from rsscale.analysis.study import Analysis, Settings
from rsscale.io import atomic_write_text


class NoUsableCells(ValueError):
    """Nothing to fit: every cell failed, diverged, is still running or is malformed."""


def _clean(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if o is pd.NA:
        return None
    return o


def _why_unusable(df: pd.DataFrame) -> str:
    """Why the completed cells cannot be used (e.g. "top1 85 outside [0, 1] (a percentage? divide
    by 100)"), the commonest reasons first: the way out belongs in the error, not only in the CSV."""
    done = df[(df["status"] == "completed") & df["note"].notna()]
    if done.empty:
        return ""
    reasons = done["note"].astype(str).str.replace(r"top1 [-+.\deE]+ outside", "top1 outside", regex=True)
    top = reasons.value_counts().head(3)
    example = done["note"].iloc[0]
    return (
        "; completed cells unusable: "
        + "; ".join(f"{n} x {r}" for r, n in top.items())
        + f" (e.g. {example})"
    )


def analyze_frame(
    df: pd.DataFrame, settings: Settings | None = None
) -> tuple[dict[str, Analysis], dict[str, str], list[str]]:
    """Run :func:`analyze_dataset` per dataset; returns (analyses, errors per dataset, notes)."""
    st = settings or Settings()
    notes = list(df.attrs.get("notes", []))
    use = df[df["usable"]].copy()
    if use.empty:
        counts = df["status"].value_counts().to_dict()
        desc = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no cells"
        raise NoUsableCells(f"no completed cells to analyse ({desc})" + _why_unusable(df))
    use["dataset"] = use["dataset"].fillna("unknown")
    dsets = use["dataset"].value_counts()
    if len(dsets) > 1:
        notes.append(
            f"{len(dsets)} datasets in the input ({', '.join(f'{k}: {v} cells' for k, v in dsets.items())}); "
            "each is analysed separately, never pooled in one fit"
        )
    analyses: dict[str, Analysis] = {}
    errors: dict[str, str] = {}
    for ds in dsets.index:
        d = use[use["dataset"] == ds]
        for col in ("recipe", "precision"):
            vals = d[col].dropna().unique()
            if len(vals) > 1:
                notes.append(
                    f"{ds}: several {col} values ({', '.join(map(str, vals))}) pooled in the same fits"
                )
        try:
            analyses[str(ds)] = analyze_dataset(d, st, str(ds))
        except Exception as e:  # keep the other datasets
            errors[str(ds)] = f"{type(e).__name__}: {e}"
            notes.append(f"{ds}: analysis failed: {type(e).__name__}: {e}")
    return analyses, errors, notes


def write_report(
    df: pd.DataFrame,
    out_dir: str | Path,
    settings: Settings | None = None,
    figures: bool = True,
    sources: list[str] | None = None,
    predict_at: list[float] | None = None,
) -> dict[str, Any]:
    """Analyse ``df`` (a normalised table from :func:`rsscale.analysis.load.load_results`) and
    write the report into ``out_dir``. Returns the recommendations dict (as in the JSON).

    ``predict_at``: target FLOPs per image; each FLOPs path's predicted error there, with its
    interval, goes to predictions.csv and the report.

    Raises :class:`NoUsableCells` when nothing can be fitted (the summary table is still written).
    """
    targets = [float(c) for c in (predict_at or [])]
    bad = [c for c in targets if not (np.isfinite(c) and c > 0)]
    if bad:
        raise ValueError(f"--predict-at: target compute must be positive FLOPs, got {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = settings or Settings()
    summary = mark_pareto(df)
    summary.to_csv(out / "summary.csv", index=False)
    analyses, errors, notes = analyze_frame(df, st)
    if not analyses:
        raise NoUsableCells("; ".join(f"{k}: {v}" for k, v in errors.items()))
    primary = max(analyses, key=lambda k: int((df["dataset"].fillna("unknown") == k).sum()))
    multi = len(analyses) > 1
    fits, ests, fig_files, preds = [], [], [], []
    for ds, an in analyses.items():
        ft = an.fits_table()
        if not ft.empty:
            ft.insert(0, "dataset", ds)
            fits.append(ft)
        if targets:
            pt = prediction_table(an.paths, targets, st.ci_level)
            pt.insert(0, "dataset", ds)
            preds.append(pt)
        if an.estimators:
            et = pd.DataFrame(an.estimators)
            et.insert(0, "dataset", ds)
            et["key"] = et["key"].map(
                lambda k: "/".join(_k(v) for v in k) if isinstance(k, tuple) else str(k)
            )
            ests.append(et)
        if figures:
            d = df[(df["dataset"].fillna("unknown") == ds)]
            fig_files += all_figures(an, d, out / "figures", prefix=f"{ds}_" if multi else "")
    fits_df = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame()
    est_df = pd.concat(ests, ignore_index=True) if ests else pd.DataFrame()
    fits_df.to_csv(out / "fits.csv", index=False)
    est_df.to_csv(out / "estimators.csv", index=False)
    pred_df = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    if targets:
        pred_df.to_csv(out / "predictions.csv", index=False)
    rec = analyses[primary].recommendations()
    rec = {
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sources": [str(s) for s in (sources or sorted(df["source"].dropna().unique()))],
        "n_cells": int(len(df)),
        "n_usable": int(df["usable"].sum()),
        "status_counts": {str(k): int(v) for k, v in df["status"].value_counts().items()},
        **rec,
        "notes": notes + rec["notes"],
    }
    if multi:
        rec["datasets"] = {ds: an.recommendations() for ds, an in analyses.items() if ds != primary}
        rec["datasets"][primary] = "see the top level"
    if errors:
        rec["dataset_errors"] = errors
    if not est_df.empty:
        rec["estimators"] = (
            est_df.groupby("law")["mean_abs_log_err"]
            .agg(["median", "mean", "count"])
            .round(5)
            .reset_index()
            .to_dict("records")
        )
    if not pred_df.empty:
        rec["predictions"] = pred_df.to_dict("records")
    rec["figures"] = [str(Path(f).relative_to(out)) for f in fig_files]
    rec = _clean(rec)
    atomic_write_text(out / "recommendations.json", json.dumps(rec, indent=1) + "\n")
    atomic_write_text(
        out / "recommendations.md", render_markdown(rec, analyses, summary, fits_df, est_df, primary, pred_df)
    )
    return rec


def render_markdown(
    rec: dict[str, Any],
    analyses: dict[str, Analysis],
    summary: pd.DataFrame,
    fits_df: pd.DataFrame,
    est_df: pd.DataFrame,
    primary: str,
    pred_df: pd.DataFrame | None = None,
) -> str:
    st = analyses[primary].settings
    L: list[str] = []
    L.append("# Scaling recommendations, recomputed from the data\n")
    L.append(f"Generated {rec['generated']} from {', '.join(rec['sources'])}.\n")
    L.append(
        f"{rec['n_cells']} cells, {rec['n_usable']} usable for fits; status counts: "
        + ", ".join(f"{k} {v}" for k, v in rec["status_counts"].items())
        + ".\n"
    )
    for ds, an in analyses.items():
        L.append(f"\n## Dataset `{ds}`\n")
        L.append(
            f"Base model of the scaling paths: depth {_k(an.base['depth'])}, width {_k(an.base['width'])}.\n"
        )
        for q in QUESTIONS:
            if q.name in an.answers:
                L += an.answers[q.name].markdown
    L.append("\n## Fitted scaling paths\n")
    if not fits_df.empty:
        cols = [
            c
            for c in (
                "dataset",
                "strategy",
                "compute",
                "epochs",
                "resolution",
                "law",
                "n",
                "c",
                "c_lo",
                "c_hi",
                "e_inf",
                "e_inf_lo",
                "e_inf_hi",
                "converged",
                "boot_ok_frac",
            )
            if c in fits_df
        ]
        L.append("Full table with every parameter and its CI, optimiser status and notes: `fits.csv`.\n")
        L.append(_md_table(fits_df[cols], 40))
        nconv = int((~fits_df["converged"].astype(bool)).sum())
        L.append(f"\nOptimiser convergence: {len(fits_df) - nconv} of {len(fits_df)} fits converged.\n")
        L.append(law_choice_markdown(fits_df))
    if pred_df is not None and not pred_df.empty:
        L.append(prediction_markdown(pred_df, st.ci_level))
    L.append("\n## Estimators compared by extrapolation\n")
    if est_df.empty:
        L.append("No path had 6 or more distinct compute values: no held-out comparison.\n")
    else:
        agg = est_df.groupby("law")["mean_abs_log_err"].agg(["median", "mean", "count"]).reset_index()
        L.append(
            "Each FLOPs path with >= 6 distinct compute values: "
            f"the top {st.holdout_frac:.0%} of its compute values "
            "held out, each law fitted to the rest; mean |log e_pred - log e_obs| on the held-out cells.\n"
        )
        L.append(_md_table(agg))
    L.append("\n## Summary table\n")
    s = summary.copy()
    s["dataset"] = s["dataset"].fillna("unknown")
    counts = s.pivot_table(
        index=["dataset", "epochs"], columns="status", values="cell_id", aggfunc="count", fill_value=0
    )
    L.append(_md_table(counts.reset_index()))
    best = s[s["usable"]].sort_values("top1", ascending=False).groupby(["dataset", "epochs"]).head(3)
    cols = ["dataset", "epochs", "depth", "width", "resolution", "top1", "flops", "train_step_s"] + [
        f"pareto_{c}" for c in COSTS
    ]
    L.append("\nBest three cells per dataset and epoch budget (full table: `summary.csv`):\n")
    L.append(_md_table(best[cols].astype(object), 60))
    L.append("\n## Notes\n")
    for n in rec.get("notes", []) or ["none"]:
        L.append(f"- {n}")
    L.append("\n## Method\n")
    L.append(METHOD.format(st=st))
    L.append("\n## Figures\n")
    for f in rec.get("figures", []):
        if f.endswith(".png"):
            L.append(f"- ![{Path(f).stem}]({f})")
    L.append("\n## Table schema (summary.csv)\n")
    L.append(schema_markdown())
    return "\n".join(L) + "\n"


def law_choice_markdown(fits_df: pd.DataFrame) -> str:
    """How each path's law was chosen: counts per law and rule, median held-out error."""
    if "law_choice" not in fits_df:
        return ""
    L = ["\n### Law choice\n"]
    L.append(
        "Each path's law is chosen by held-out extrapolation (rsscale/analysis/selection.py): fitted "
        "below the largest compute values, scored by the RMS log error on them (`heldout_rmse`); "
        "among the ranked laws with the most parameters, the lowest score wins; short paths fall "
        "back to fewer parameters (`law_choice`). Per candidate: `heldout_rmse_<law>` in fits.csv.\n"
    )
    g = fits_df.groupby(["law", "law_choice"], dropna=False)
    agg = g.agg(paths=("law", "size"), median_heldout_rmse=("heldout_rmse", "median")).reset_index()
    L.append(_md_table(agg))
    return "\n".join(L) + "\n"


def prediction_markdown(pred_df: pd.DataFrame, level: float) -> str:
    """The predicted error of each FLOPs path at each --predict-at target, with its interval."""
    L = ["\n## Predicted error at target compute\n"]
    L.append(
        f"Each FLOPs path's chosen law at the target FLOPs per image, with the {level:.0%} bootstrap "
        "interval; `extrapolation` = target / the path's largest fitted FLOPs (above 1: beyond the "
        "data, and the interval covers only the fit's noise). Full table: `predictions.csv`.\n"
    )
    t = pred_df.copy()
    t["interval"] = [f"[{_fmt(a, 4)}, {_fmt(b, 4)}]" for a, b in zip(t["error_lo"], t["error_hi"])]
    cols = [
        c
        for c in (
            "dataset",
            "strategy",
            "epochs",
            "resolution",
            "law",
            "target_flops",
            "error",
            "interval",
            "extrapolation",
        )
        if c in t
    ]
    L.append(_md_table(t[cols], 40))
    return "\n".join(L) + "\n"


METHOD = """\
- **Scaling paths** from a base model (smallest depth and width of the grid unless set): the depth
  path varies depth at the base width, the width path varies width at the base depth, at each
  (resolution, epoch budget); the resolution path varies resolution at the base depth and width.
- **Fits**: law `{st.law}` (`auto`: per path, by held-out extrapolation among `powerlaw`,
  `saturating` `e_inf + b C^-c`, `offset` `e_inf + b (C + C0)^-c` and `ceiling` (M4)
  `(e - e_inf)/(e0 - e)^alpha = beta C^-c`, e0 the random-guess error; see "Law choice"), C = FLOPs
  or measured train-step time, Huber loss on log error (delta: 1.345 x robust residual scale, at
  least 1e-3; the cells at a path's largest compute keep the squared loss), multi-start grid then
  scipy `least_squares`, whose status is reported. Paths too short for a law get fewer parameters,
  down to the log-linear form `log e = a - c log C` (noted per fit).
- **Uncertainty**: {st.n_boot} bootstrap resamples; over cells (resampled with replacement, spread
  widened by sqrt(n/(n-p))) for paths with >= 10 distinct compute values, over residuals (fixed
  cells, centred log residuals rescaled by sqrt(n/(n-p))) for shorter paths, where case resamples
  would lose too many of the few design points. {st.ci_level:.0%} percentile intervals.
- **Depth vs width**: the mean over the common compute range of `log e_depth(C) - log e_width(C)`,
  averaged over resolutions for an epoch budget. Confidence = fraction of bootstrap resamples in
  which the leader leads by more than {st.min_effect} (log error, i.e. about {st.min_effect:.0%} relative
  error); winner if confidence >= {st.threshold}; else `equivalent` when the difference lies inside
  +-{st.equivalence_margin} (log error) with confidence >= {st.threshold} (two one-sided tests on the
  bootstrap); else `inconclusive` (underpowered: the report gives the minimal detectable difference
  and how many more seeds or cells would resolve it, extrapolating se ~ 1/sqrt(replicates)); also
  `inconclusive` when the paths do not overlap in compute or have fewer than {st.min_path_points}
  distinct compute values.
- **Resolution**: per epoch budget, the joint law in two forms, additive
  `e = E + A_d d^-a_d + A_w w^-a_w + B r^-a_r` (depth and width complement each other) and product
  `e = E + A d^-a_d w^-a_w + B r^-a_r` (they substitute), Huber in log space, multi-start, with
  log FLOPs linear in the log axes (`log C ~ g . u`), gives the iso-FLOPs optimum's resolution
  exponent `k = (1/a_r) / sum_S (1 / b_S)`, `b_S = max_(i in S) a_i / g_i` per term S (additive:
  `(1/a_r) / sum_i (g_i / a_i)`; product, FLOPs ~ d w^2 r^2: `a / (2a + a_r)`). The forms are
  weighed by 5-fold held-out error (weight of product = P(its held-out Huber loss is lower),
  paired over cells); k is the weighted mean and its bootstrap the mixture, so the interval widens
  when the forms disagree and the data cannot tell them apart. A quadratic log-error surface gives
  a model-free-ish cross-check. Bootstrap over cells, all refitted. Headline k = mean over epoch
  budgets. `slower` / `not_slower` only when both estimators put >= {st.threshold} of their
  bootstrap mass on the same side of 0.2016 (EfficientNet's compound rule); `equivalent` when both
  put it inside 0.2016 +- {st.resolution_margin}; else `inconclusive`.
  The Pareto-frontier slope is a diagnostic only: it is pulled toward the grid's own geometry.
- **Estimators** are compared by extrapolation: the largest-compute cells of each path are held
  out and scored by mean absolute log error.
"""
