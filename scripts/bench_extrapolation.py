"""Extrapolation accuracy of each law and of the held-out law choice, on generated curves.

    .venv/bin/python scripts/bench_extrapolation.py [--per-form 40] [--n 10] [--train 7] [--seed 0]

Draws ``per-form`` curves of each form of :mod:`rsscale.analysis.curvegen` (``n`` compute
values over 4 decades, 0.5-3% noise), fits every estimator to the ``train`` smallest compute
values and scores the rest against the noise-free truth: RMSE of the error (in error units,
as the M4 paper does) and of the log error. Prints one Markdown table per statistic (median
over curves, by generating form and overall), and how often the choice picked each law.

Estimators: each law alone (``ceiling`` is M4's form); ``saturating (old loss)``, the former
default (no protection of the last point by the Huber loss); ``chosen`` (the analysis default,
:func:`rsscale.analysis.selection.fit_selected`); ``averaged`` (log-space average of the laws of the
tier the choice is made in, weights proportional to 1 / heldout_rmse**2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.analysis.curvegen import FORMS, draw_curves  # noqa: E402
from rsscale.analysis.fit import CurveData, fit_curves  # noqa: E402
from rsscale.analysis.laws import LAWS  # noqa: E402
from rsscale.analysis.selection import CANDIDATES, fit_selected, heldout_scores  # noqa: E402


def markdown(df: pd.DataFrame, fmt: str = "{:.4f}") -> str:
    """A DataFrame as a Markdown table (index as the first column)."""
    cells = [[str(df.index.name or "")] + [str(c) for c in df.columns]]
    for k, row in df.iterrows():
        cells.append([str(k)] + [fmt.format(v) if isinstance(v, float) else str(v) for v in row])
    out = ["| " + " | ".join(r) + " |" for r in cells]
    out.insert(1, "|" + "|".join("---" for _ in cells[0]) + "|")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-form", type=int, default=40)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--train", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not 2 <= a.train < a.n:
        ap.error("need 2 <= --train < --n")
    gen = draw_curves(FORMS, a.per_form, a.seed, n=a.n)
    train = [CurveData(i, g.C[: a.train], g.err[: a.train]) for i, g in enumerate(gen)]
    e0 = [g.e0 for g in gen]
    Ct = [g.C[a.train :] for g in gen]
    truth = [g.truth[a.train :] for g in gen]

    def copy():
        return [CurveData(c.key, c.C.copy(), c.err.copy()) for c in train]

    preds: dict[str, list[np.ndarray]] = {}
    secs: dict[str, float] = {}
    for law in CANDIDATES:
        t = time.perf_counter()
        fits = fit_curves(copy(), law=law, n_boot=0, e0=e0, fallback=None, min_points={law: 3})
        secs[law] = time.perf_counter() - t
        preds[law] = [f.log_err(c) if f.law != "none" else np.full(c.size, np.nan) for f, c in zip(fits, Ct)]
    t = time.perf_counter()
    fits = fit_curves(copy(), law="saturating", n_boot=0, protect_last=False)
    secs["saturating (old loss)"] = time.perf_counter() - t
    preds["saturating (old loss)"] = [f.log_err(c) for f, c in zip(fits, Ct)]
    t = time.perf_counter()
    fits = fit_selected(copy(), e0=e0, n_boot=0)
    secs["chosen"] = time.perf_counter() - t
    preds["chosen"] = [f.log_err(c) for f, c in zip(fits, Ct)]
    picked = [f.law for f in fits]
    score, _ = heldout_scores(copy(), CANDIDATES, e0)
    npar = np.array([LAWS[c].n_params for c in CANDIDATES])
    avg = []
    for i in range(len(gen)):
        s = score[i]
        ok = np.isfinite(s)
        if not ok.any():
            avg.append(preds["chosen"][i])
            continue
        tier = ok & (npar == npar[ok].max())  # the tier the choice is made in
        wts = np.where(tier, 1.0 / np.maximum(s, 1e-9) ** 2, 0.0)
        wts /= wts.sum()
        avg.append(sum(wts[k] * preds[law][i] for k, law in enumerate(CANDIDATES) if wts[k] > 0))
    preds["averaged"] = avg
    secs["averaged"] = secs["chosen"]
    rows = []
    for est, p in preds.items():
        for i, g in enumerate(gen):
            rows.append(
                {
                    "form": g.form,
                    "estimator": est,
                    "rmse": float(np.sqrt(np.mean((np.exp(p[i]) - truth[i]) ** 2))),
                    "rmse_log": float(np.sqrt(np.mean((p[i] - np.log(truth[i])) ** 2))),
                }
            )
    df = pd.DataFrame(rows)
    print(
        f"{len(gen)} curves ({a.per_form} per form), {a.n} compute values over 4 decades, "
        f"fitted on the {a.train} smallest, scored on the {a.n - a.train} largest against the truth\n"
    )
    for stat in ("rmse", "rmse_log"):
        tab = df.pivot_table(index="estimator", columns="form", values=stat, aggfunc="median")[list(FORMS)]
        tab["all"] = df.groupby("estimator")[stat].median()
        tab["seconds"] = pd.Series(secs)
        print(f"median {stat} of the extrapolation\n")
        print(markdown(tab.loc[list(preds)]))
        print()
    m4 = (
        df[df.estimator == "ceiling"]
        .set_index(df[df.estimator == "ceiling"].index % len(gen))["rmse"]
        .to_numpy()
    )
    for est in ("chosen", "averaged", "saturating"):
        v = df[df.estimator == est]["rmse"].to_numpy()
        print(
            f"{est} at least as accurate as the ceiling (M4) law on {np.mean(v <= m4 + 1e-12):.0%} of curves"
        )
    pk = pd.crosstab(pd.Series([g.form for g in gen], name="form"), pd.Series(picked, name="chosen law"))
    print("\nlaw chosen per generating form\n")
    print(markdown(pk))
    return 0


if __name__ == "__main__":
    sys.exit(main())
