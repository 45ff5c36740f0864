"""Which law for which curve: chosen per curve by held-out extrapolation error.

A scaling fit is read beyond its data (at larger compute), so laws are compared on what they
are used for: each candidate is fitted to the smaller-compute part of the curve and scored on
the cells it did not see.

Rule (``law="auto"``, the default of the analysis):

- folds: with n distinct compute values, K = 2 folds for n <= 9 and ``round(0.2 n)`` above,
  at most n - 3 (so three values are always fitted). Fold j (1..K) fits the cells below the
  j-th largest compute value and predicts every cell at or above it, so the largest value is
  predicted K times, from shorter and shorter curves (a rolling-origin forecast);
- a law is scored on a fold only when that fold's training part has at least ``p + 1`` distinct
  compute values (p its number of parameters; powerlaw 3, saturating 4, offset and ceiling 5)
  and only ranked when it is scored on all K folds;
- score: root mean square of ``log e_pred - log e_obs`` over all predicted cells of all folds
  (``heldout_rmse``);
- choice in tiers: among the ranked laws with the most parameters (offset and ceiling when the
  folds leave them 5 values, i.e. 7 or more distinct compute values), the one with the lowest
  score; simpler laws are chosen only where the richer ones cannot be ranked. Why: a held-out
  fold fits a 4-parameter law to 5 or 6 points but the final fit uses 7 or more, so the held-out
  score handicaps the richer laws. On generated curves (scripts/bench_extrapolation.py,
  docs/calibration.md) ranking all laws together picked ``saturating`` for curves that start
  near the ceiling and doubled the median extrapolation error there;
- a curve with fewer than 4 distinct compute values has no folds: it gets the log-linear
  ``powerlaw`` (2 values: exact; 1: no fit). ``law_choice`` in fits.csv says which rule applied;
- short-path rule: a curve with 5 or more distinct values whose folds rank only the log-linear
  law (5 values: the second fold fits 3) gets the saturating law instead: the log-linear law
  would win there by default, not by comparison, and its exponent (the local log-log slope)
  understates a saturating curve's with a narrow interval (docs/calibration.md).

The held-out fits are vectorised multi-start fits without the scipy polish and without the
bootstrap, richest tier first: a curve whose folds rank a richer tier is not fitted with the
simpler laws (their ``heldout_rmse_<law>`` is NaN). Only the chosen law is bootstrapped, on the
full curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsscale.analysis.fit import CurveData, FitResult, auto_deltas, fit_curves
from rsscale.analysis.laws import LAWS

CANDIDATES: tuple[str, ...] = ("powerlaw", "saturating", "offset", "ceiling")
# fewest distinct compute values for the short-path rule (saturating instead of a default
# log-linear choice; see fit_selected)
SHORT_SATURATING = 5


def heldout_min_points(law: str) -> int:
    """Fewest distinct compute values a law is fitted to in a held-out fold: p + 1."""
    return LAWS[law].n_params + 1


def n_folds(n_unique: int) -> int:
    """K held-out folds for a curve with ``n_unique`` distinct compute values (0: too short)."""
    k = 2 if n_unique <= 9 else int(round(0.2 * n_unique))
    return max(0, min(k, n_unique - 3))


@dataclass
class HeldOut:
    """The held-out folds of a set of curves: ``score`` (G, L) RMSE of log error per curve and
    candidate (NaN: not ranked), ``K`` (G,) folds per curve, and ``rows``: for the curves asked
    for, every candidate's extrapolation error on one fold (the estimator comparison,
    estimators.csv), each row with the curve's index ``g``."""

    score: np.ndarray
    K: np.ndarray
    rows: list[dict[str, Any]] = field(default_factory=list)


def report_fold(n_unique: int, holdout_frac: float) -> int:
    """The fold of the estimator comparison: the top ``holdout_frac`` of the distinct compute
    values held out (at least one), 0 when fewer than 2 values would be left to fit."""
    k = max(1, int(round(holdout_frac * n_unique)))
    return k if n_unique - k >= 2 else 0


def heldout(
    curves: list[CurveData],
    candidates: tuple[str, ...] = CANDIDATES,
    e0: list[float | None] | None = None,
    huber_delta: float | str = "auto",
    max_iter: int = 200,
    compare: list[bool] | None = None,
    holdout_frac: float = 0.2,
) -> HeldOut:
    """Held-out folds of every curve (see the module doc), and the estimator comparison rows.

    ``huber_delta="auto"``: each curve's threshold from the saturating law on the whole curve,
    shared by all its folds and candidates (one robust scale per curve, and cheap).
    ``compare``: per curve, whether to fit every candidate on its :func:`report_fold` as well
    (whatever the tier rule would skip) and report them in ``rows``; that fold is usually one of
    the scored folds, so the comparison costs the cheap simpler laws only."""
    e0s = list(e0) if e0 is not None else [None] * len(curves)
    cmp = list(compare) if compare is not None else [False] * len(curves)
    if len(cmp) != len(curves):
        raise ValueError(f"heldout: {len(cmp)} compare flags for {len(curves)} curves")
    G, L = len(curves), len(candidates)
    K = np.zeros(G, int)
    folds: list[_Fold] = []
    clean = []
    for c in curves:
        C, e = np.asarray(c.C, float), np.asarray(c.err, float)
        ok = np.isfinite(C) & np.isfinite(e) & (C > 0) & (e > 0)
        clean.append(CurveData(c.key, C[ok], e[ok]))
    if isinstance(huber_delta, str) and huber_delta == "auto":
        have = [g for g, c in enumerate(clean) if c.C.size >= 1]
        dcurve = np.full(G, 1e-3)
        if have:
            dcurve[have] = auto_deltas([clean[g] for g in have], max_iter=max_iter)
    else:
        dcurve = np.full(G, float(huber_delta))
    for g, c in enumerate(clean):
        C, e = c.C, c.err
        u = np.unique(C)
        K[g] = n_folds(u.size)
        kr = report_fold(u.size, holdout_frac) if cmp[g] else 0
        for j in sorted(set(range(1, K[g] + 1)) | ({kr} if kr else set())):
            tr = u[-j] > C
            folds.append(
                _Fold(
                    g,
                    int(np.unique(C[tr]).size),
                    CurveData((g, j), C[tr], e[tr]),
                    C[~tr],
                    e[~tr],
                    j <= K[g],
                    j == kr,
                )
            )
    sq = np.zeros((G, L))
    cnt = np.zeros((G, L))
    nf = np.zeros((G, L), int)
    rows: list[dict[str, Any]] = []
    # richest tier first: a curve whose folds rank a richer tier cannot choose a simpler law, so
    # the simpler laws are not fitted to it (their heldout_rmse stays NaN), except on its
    # comparison fold
    npar = [LAWS[c].n_params for c in candidates]
    for li in sorted(range(L), key=lambda i: -npar[i]):
        law = candidates[li]
        richer = [i for i in range(L) if npar[i] > npar[li]]
        ranked = ((nf[:, richer] >= K[:, None]) & (K[:, None] > 0)).any(1) if richer else np.zeros(G, bool)
        mp = heldout_min_points(law)
        use = [f for f in folds if f.n_train >= mp and ((f.scored and not ranked[f.g]) or f.report)]
        if not use:
            continue
        fits = fit_curves(
            [f.train for f in use],
            law=law,
            n_boot=0,
            huber_delta=np.array([dcurve[f.g] for f in use]),
            min_points={law: mp},
            fallback=None,
            max_iter=max_iter,
            e0=[e0s[f.g] for f in use],
            polish=False,
        )
        for f, fr in zip(use, fits):
            if fr.law == "none":
                continue
            r = fr.log_err(f.C_test) - np.log(f.e_test)
            if f.report:
                rows.append(
                    {
                        "g": f.g,
                        "key": curves[f.g].key,
                        "law": law,
                        "n_train_values": f.n_train,
                        "n_test": int(f.C_test.size),
                        "extrap_ratio": float(f.C_test.max() / fr.c_range[1]),
                        "mean_abs_log_err": float(np.mean(np.abs(r))),
                        "converged": fr.converged,
                    }
                )
            if not (f.scored and not ranked[f.g]) or not np.all(np.isfinite(r)):
                continue
            sq[f.g, li] += float(np.sum(r**2))
            cnt[f.g, li] += r.size
            nf[f.g, li] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.sqrt(sq / cnt)
    score[(nf < K[:, None]) | (K[:, None] == 0)] = np.nan
    order = {c: i for i, c in enumerate(candidates)}
    rows.sort(key=lambda r: (order[r["law"]], r["g"]))
    return HeldOut(score, K, rows)


@dataclass
class _Fold:
    g: int  # the curve
    n_train: int  # distinct compute values fitted
    train: CurveData
    C_test: np.ndarray
    e_test: np.ndarray
    scored: bool  # one of the curve's K folds (counts in its heldout_rmse)
    report: bool  # the estimator comparison's fold


def heldout_scores(
    curves: list[CurveData],
    candidates: tuple[str, ...] = CANDIDATES,
    e0: list[float | None] | None = None,
    huber_delta: float | str = "auto",
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """(G, L) held-out RMSE of log error per curve and candidate (NaN: not ranked), and (G,) K
    (:func:`heldout` without the comparison rows)."""
    h = heldout(curves, candidates, e0, huber_delta, max_iter)
    return h.score, h.K


def choose(score: np.ndarray, candidates: tuple[str, ...]) -> list[str | None]:
    """Per row: the best-scored law among the ranked ones with the most parameters (None: none)."""
    p = np.array([LAWS[c].n_params for c in candidates])
    out: list[str | None] = []
    for row in score:
        ok = np.isfinite(row)
        if not ok.any():
            out.append(None)
            continue
        tier = ok & (p == p[ok].max())
        out.append(candidates[int(np.argmin(np.where(tier, row, np.inf)))])
    return out


def fit_selected(
    curves: list[CurveData],
    candidates: tuple[str, ...] = CANDIDATES,
    e0: float | list[float | None] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    compare: list[bool] | None = None,
    holdout_frac: float = 0.2,
    **fit_kw: Any,
) -> list[FitResult]:
    """Choose each curve's law by held-out extrapolation, then fit it (with its bootstrap).

    ``fit_kw`` goes to :func:`rsscale.analysis.fit.fit_curves` (ci_level, huber_delta, ...).
    Each result's ``selection`` holds ``law_choice``, ``heldout_folds``, ``heldout_rmse`` and
    ``heldout_rmse_<law>`` for every candidate (the columns fits.csv gets). For the curves
    flagged in ``compare``, ``comparison`` holds every candidate's error on the fold that holds
    out the top ``holdout_frac`` of compute values (estimators.csv; from the same held-out fits).
    """
    bad = [c for c in candidates if c not in LAWS]
    if bad or not candidates:
        raise ValueError(f"unknown candidate law(s) {bad}; known: {sorted(LAWS)}")
    e0s = list(e0) if isinstance(e0, (list, tuple, np.ndarray)) else [e0] * len(curves)
    if len(e0s) != len(curves):
        raise ValueError(f"fit_selected: {len(e0s)} e0 values for {len(curves)} curves")
    hd = fit_kw.get("huber_delta", "auto")
    h = heldout(curves, candidates, e0s, hd, compare=compare, holdout_frac=holdout_frac)
    score, K = h.score, h.K
    comparison: dict[int, list[dict[str, Any]]] = {}
    for r in h.rows:
        comparison.setdefault(r.pop("g"), []).append(r)
    chosen = choose(score, candidates)
    # short-path rule: on a curve whose folds can rank only the log-linear law (5 distinct
    # values: its second fold fits 3), that law would win by default, not by comparison, and
    # its exponent is the local log-log slope, which understates a saturating curve's exponent
    # with a narrow interval (docs/calibration.md: 0-10% coverage); fit the saturating law
    # there instead (2 residual degrees of freedom: a wide but honest interval)
    rule = ["heldout" if c else f"short path ({K[g]} folds): powerlaw" for g, c in enumerate(chosen)]
    if "saturating" in candidates:
        si = candidates.index("saturating")
        for g, c in enumerate(chosen):
            nu = np.unique(np.asarray(curves[g].C, float)).size
            if c == "powerlaw" and nu >= SHORT_SATURATING and not np.isfinite(score[g, si]):
                chosen[g] = "saturating"
                rule[g] = f"short path ({nu} values): saturating (only the log-linear law was ranked)"
    groups: dict[str, list[int]] = {}
    for g, law in enumerate(chosen):
        groups.setdefault(law or "powerlaw", []).append(g)
    out: list[FitResult | None] = [None] * len(curves)
    for k, (law, idx) in enumerate(sorted(groups.items())):
        fits = fit_curves(
            [curves[g] for g in idx],
            law=law,
            n_boot=n_boot,
            seed=seed + 7919 * k,
            e0=[e0s[g] for g in idx],
            min_points={law: 2 if law == "powerlaw" else heldout_min_points(law)},
            fallback="powerlaw",
            **fit_kw,
        )
        for g, f in zip(idx, fits):
            li = candidates.index(law) if law in candidates else None
            sel: dict[str, Any] = {
                "law_choice": rule[g],
                "heldout_folds": int(K[g]),
                "heldout_rmse": float(score[g, li])
                if rule[g] == "heldout" and li is not None
                else float("nan"),
            }
            for i, c in enumerate(candidates):
                sel[f"heldout_rmse_{c}"] = float(score[g, i])
            f.selection = sel
            f.comparison = comparison.get(g, [])
            if not chosen[g] and f.law == "powerlaw":
                f.notes.append(
                    f"{f.n_unique} distinct compute values: too few for a held-out law choice; "
                    "fitted the 'powerlaw' form (log-linear)"
                )
            if f.law == "powerlaw" and f.n_unique >= 3:
                f.notes.append(
                    "log-linear fit: c is the local log-log slope over the data, below the "
                    "exponent of a curve that saturates (its interval is for that slope)"
                )
            out[g] = f
    return [f for f in out if f is not None]
