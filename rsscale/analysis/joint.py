"""Joint laws of error in depth, width and resolution, in two functional forms, and the
compute-optimal resolution exponent each implies.

Why two forms: whether depth and width *complement* each other (one term per axis, the
``additive`` form ``e = E + A_d d^-a_d + A_w w^-a_w + B r^-g``) or *substitute* for each other
(one compound model-size term, the ``product`` form ``e = E + A d^-a_d w^-a_w + B r^-g``)
changes the compute-optimal resolution exponent by 2-3x, and a single assumed form misses the
truth when the data follow the other. Both are fitted (Huber loss on log error, multi-start,
batched Levenberg-Marquardt) and compared by K-fold held-out error; the weight of each form is
the probability that its held-out loss is the lower one (a paired z-test over cells), so the
interval is the bootstrap mixture of both forms when the data cannot tell them apart, and the
winner's alone when they can.

The exponent: with log C ~ g . u (u the log axes, g fitted), a term with axes S costs log
FLOPs at its best rate ``b_S = max_{i in S} a_i / g_i`` (within a product term the optimum puts
all model FLOPs on the axis with the best exponent per log-FLOP, unbounded by the grid). Terms
then share log C in proportion to ``1 / b_S``, and resolution, alone in its term, grows as
``k = (1 / a_r) / sum_S (1 / b_S)``. For the additive form this is the familiar
``(1 / a_r) / sum_i (g_i / a_i)``; for the product form with FLOPs ~ d w^2 r^2 it is
``a / (2a + g)``, ``a = max(a_d, a_w / 2)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from rsscale.analysis.fit import Law, lm_batch
from rsscale.analysis.threads import map_chunks, n_chunks, n_threads

FORMS = ("additive", "product")
MIN_WEIGHT = 1e-3
# relative tolerance (cost decrease and step) of the bootstrap refits. Not the path fits' 1e-5
# (fit.py): on the 10,000-cell bench's 5-epoch budget (weak depth term) 1e-5 stopped resamples
# that were still moving and narrowed k's interval from [0.109, 0.166] to [0.119, 0.164]
BOOT_TOL = 1e-8


class GroupedAxes(Law):
    """``log e = log(E + sum_S A_S exp(-sum_{i in S} a_i u_i))`` over log axes u (x: (G, n, m)).

    ``groups`` lists the axes of each term: ``[(0,), (1,), (2,)]`` is the additive form,
    ``[(0, 1), (2,)]`` the product form. theta = (log E, then per term log A_S and its a_i)."""

    def __init__(self, groups: list[tuple[int, ...]], name: str):
        self.groups = [tuple(g) for g in groups]
        self.name = name
        self.m = sum(len(g) for g in self.groups)
        names = ["lE"]
        self.amp_idx: list[int] = []
        self.alpha_idx = np.zeros(self.m, int)
        for j, g in enumerate(self.groups):
            self.amp_idx.append(len(names))
            names.append(f"lA{j}")
            for i in g:
                self.alpha_idx[i] = len(names)
                names.append(f"alpha{i}")
        self.theta_names = self.param_names = tuple(names)

    def _terms(self, th, x):
        G, n = x.shape[:2]
        ts = [np.broadcast_to(th[:, 0:1], (G, n))]
        for j, g in enumerate(self.groups):
            t = th[:, self.amp_idx[j] : self.amp_idx[j] + 1]
            for i in g:
                a = self.alpha_idx[i]
                t = t - th[:, a : a + 1] * x[..., i]
            ts.append(t)
        return ts

    @staticmethod
    def _lse(ts):
        mx = ts[0]
        for t in ts[1:]:
            mx = np.maximum(mx, t)
        acc = np.exp(ts[0] - mx)
        for t in ts[1:]:
            acc = acc + np.exp(t - mx)
        return mx + np.log(acc)

    def y(self, th, x):
        return self._lse(self._terms(th, x))

    def jac(self, th, x):
        return self.y_jac(th, x)[1]

    def y_jac(self, th, x):
        """Value and Jacobian from one pass over the terms (the solver wants both per step)."""
        ts = self._terms(th, x)
        mx = ts[0]
        for t in ts[1:]:
            mx = np.maximum(mx, t)
        es = [np.exp(t - mx) for t in ts]
        acc = es[0]
        for e in es[1:]:
            acc = acc + e
        yy = mx + np.log(acc)
        inv = 1.0 / acc  # each term's share of the error is its exp over their sum
        J = np.empty(x.shape[:2] + (self.n_params,))
        J[..., 0] = es[0] * inv
        for j, g in enumerate(self.groups):
            wj = es[1 + j] * inv
            J[..., self.amp_idx[j]] = wj
            for i in g:
                J[..., self.alpha_idx[i]] = -wj * x[..., i]
        return yy, J

    def starts(self, x, y, w):
        ymin = np.where(w > 0, y, np.inf).min(1)
        out = []
        for a0 in (0.1, 0.3, 0.8):
            for fe in (0.2, 0.6, 0.9):
                th = np.zeros(ymin.shape + (self.n_params,))
                th[..., 0] = ymin + np.log(fe)
                for j in range(len(self.groups)):
                    th[..., self.amp_idx[j]] = ymin + np.log((1 - fe) / len(self.groups))
                th[..., self.alpha_idx] = a0
                out.append(th)
        return np.stack(out, axis=1)

    def bounds(self, x, y, w):
        ymin = np.where(w > 0, y, np.inf).min(1)
        ymax = np.where(w > 0, y, -np.inf).max(1)
        G = x.shape[0]
        lo = np.zeros((G, self.n_params))
        hi = np.zeros((G, self.n_params))
        lo[:, 0], hi[:, 0] = ymin - 20.0, ymax + 1.0
        lo[:, self.amp_idx], hi[:, self.amp_idx] = -40.0, 20.0
        lo[:, self.alpha_idx], hi[:, self.alpha_idx] = 1e-3, 5.0
        return lo, hi

    def alphas(self, th: np.ndarray) -> np.ndarray:
        """Per-axis exponents, (B, m)."""
        return th[:, self.alpha_idx]

    def resolution_exponent(self, th: np.ndarray, g: np.ndarray) -> np.ndarray:
        """k per row of th (B, p) and g (B, m); resolution is the last axis, alone in its term."""
        al = self.alphas(th)
        with np.errstate(all="ignore"):
            rate = np.where(g > 0, al / np.where(g > 0, g, 1.0), np.nan)
            inv = sum(1.0 / np.max(rate[:, list(s)], axis=1) for s in self.groups)
            return (1.0 / al[:, -1]) / inv


def make_law(form: str, m: int) -> GroupedAxes:
    """The form's law over m log axes (resolution last)."""
    if form == "additive":
        return GroupedAxes([(i,) for i in range(m)], "additive")
    if form == "product":
        return GroupedAxes([tuple(range(m - 1)), (m - 1,)], "product")
    raise ValueError(f"unknown joint form {form!r} (known: {', '.join(FORMS)})")


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _solve(law, x, y, W, th0, delta, lo, hi, max_iter, chunk_elems=2_000_000, tol=1e-8):
    """lm_batch over the rows of W (B, n), in chunks that bound memory, solved on threads
    (:mod:`rsscale.analysis.threads`); ``tol``: its relative tolerance on cost decrease and step."""
    B, n = W.shape
    nt = n_threads()
    k = n_chunks(B, chunk_elems // max(n * law.n_params, 1), nt)
    bounds = np.linspace(0, B, k + 1).round().astype(int)

    def solve(i):
        s, e = bounds[i], bounds[i + 1]
        return lm_batch(
            law,
            np.broadcast_to(x, (e - s,) + x.shape[1:]),
            np.broadcast_to(y, (e - s, n)),
            W[s:e],
            th0[s:e],
            np.full(e - s, delta),
            lo[s:e],
            hi[s:e],
            max_iter=max_iter,
            ftol=tol,
            xtol=tol,
        )

    outs = map_chunks(solve, range(k), nt)
    return tuple(np.concatenate([o[j] for o in outs]) for j in range(3))


def _polish(law, x, y, th0, delta, lo, hi):
    """scipy least_squares (Huber) from the best multi-start point; returns (theta, success)."""
    th0 = np.minimum(np.maximum(th0, lo + 1e-12), hi - 1e-12)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = least_squares(
                lambda t: law.y(t[None], x)[0] - y,
                th0,
                jac=lambda t: law.jac(t[None], x)[0],
                bounds=(lo, hi),
                loss="huber",
                f_scale=float(delta),
                method="trf",
                x_scale="jac",
                max_nfev=2000,
            )
        return res.x, bool(res.success and res.status > 0)
    except Exception:  # pragma: no cover - scipy rejects odd inputs
        return th0, False


@dataclass
class FormFit:
    """One form fitted to one epoch budget: point estimate, bootstrap and held-out losses."""

    form: str
    theta: np.ndarray
    k: float
    k_boot: np.ndarray
    converged: bool
    delta: float
    cv_resid: np.ndarray  # per cell, its held-out log residual (fold refitted without it)
    alphas: dict[str, float] = field(default_factory=dict)
    boot_ok_frac: float | None = None


def fit_form(
    form: str,
    U: np.ndarray,
    y: np.ndarray,
    lc: np.ndarray,
    folds: np.ndarray,
    axes: list[str],
    max_iter: int = 300,
) -> FormFit:
    """Fit one form (multi-start, Huber with delta = 1.345 x MAD, polish) and its held-out
    residuals (each fold refitted from the full-data optimum); the bootstrap is
    :func:`bootstrap_form`."""
    n, m = U.shape
    law = make_law(form, m)
    x, yy, one = U[None], y[None], np.ones((1, n))
    S0 = law.starts(x, yy, one)[0]
    S = len(S0)
    lo1, hi1 = law.bounds(x, yy, one)
    lo, hi = np.repeat(lo1, S, 0), np.repeat(hi1, S, 0)
    ones = np.ones((S, n))
    th, _, cost = _solve(law, x, y, ones, S0, 1e6, lo, hi, max_iter)
    best = th[np.nanargmin(cost)]
    r = law.y(best[None], x)[0] - y
    mad = 1.4826 * np.median(np.abs(r - np.median(r)))
    delta = max(1.345 * mad * math.sqrt(n / max(n - law.n_params, 1)), 1e-3)
    th, conv, cost = _solve(law, x, y, ones, th, delta, lo, hi, max_iter)
    i = int(np.nanargmin(cost))
    tp, ok = _polish(law, U, y, th[i], delta, lo1[0], hi1[0])
    if huber(law.y(tp[None], x)[0] - y, delta).sum() <= cost[i] * (1 + 1e-9) + 1e-15:
        th_i = tp
    else:
        th_i, ok = th[i], False
    converged = ok or bool(conv[i])
    design = np.concatenate([np.ones((n, 1)), U], 1)
    g0 = np.linalg.lstsq(design, lc, rcond=None)[0][1:]
    k0 = float(law.resolution_exponent(th_i[None], g0[None])[0])
    # held-out loss: K folds, each refitted without its cells
    K = int(folds.max()) + 1
    Wf = np.ones((K, n))
    Wf[folds[None, :] == np.arange(K)[:, None]] = 0.0
    tf, _, _ = _solve(
        law, x, y, Wf, np.repeat(th_i[None], K, 0), delta, lo1.repeat(K, 0), hi1.repeat(K, 0), max_iter
    )
    pred = law.y(tf, np.broadcast_to(x, (K, n, m)))
    cv = pred[folds, np.arange(n)] - y
    return FormFit(
        form=form,
        theta=th_i,
        k=k0,
        k_boot=np.zeros(0),
        converged=converged,
        delta=float(delta),
        cv_resid=cv,
        alphas=dict(zip(axes, (float(a) for a in law.alphas(th_i[None])[0]))),
    )


def bootstrap_form(
    ff: FormFit,
    U: np.ndarray,
    y: np.ndarray,
    lc: np.ndarray,
    W: np.ndarray,
    max_iter: int = 300,
    tol: float = BOOT_TOL,
):
    """k per bootstrap weight row of W (B, n): each resample refitted from the full-data
    optimum; resamples that do not converge are NaN. Fills ff.k_boot and ff.boot_ok_frac.
    ``tol``: the refits' relative tolerance (see BOOT_TOL)."""
    n, m = U.shape
    B = W.shape[0]
    if B == 0:
        ff.k_boot = np.zeros(0)
        return ff
    law = make_law(ff.form, m)
    x = U[None]
    lo1, hi1 = law.bounds(x, y[None], np.ones((1, n)))
    bth, bconv, _ = _solve(
        law,
        x,
        y,
        W,
        np.repeat(ff.theta[None], B, 0),
        ff.delta,
        lo1.repeat(B, 0),
        hi1.repeat(B, 0),
        max_iter,
        tol=tol,
    )
    gb = weighted_lstsq(np.concatenate([np.ones((n, 1)), U], 1), lc, W)[:, 1:]
    kb = law.resolution_exponent(bth, gb)
    ff.k_boot = np.where(bconv & np.isfinite(kb), kb, np.nan)
    ff.boot_ok_frac = float(np.isfinite(ff.k_boot).mean())
    return ff


def weighted_lstsq(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Batched weighted least squares: X (n, p), y (n,), W (B, n) -> (B, p)."""
    A = np.einsum("bn,ni,nj->bij", W, X, X)
    b = W @ (X * y[:, None])
    return np.linalg.solve(A + 1e-12 * np.eye(X.shape[1]), b[..., None])[..., 0]


def form_weight(ra: np.ndarray, rb: np.ndarray, delta: float) -> tuple[float, float]:
    """P(form b predicts held-out cells better than form a): Phi(z) of the paired difference of
    per-cell held-out Huber losses (residuals ra, rb; z = mean / standard error).
    Returns (weight of b, z)."""
    d = huber(ra, delta) - huber(rb, delta)
    n = d.size
    sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
    if sd <= 0:
        z = 0.0 if abs(float(d.mean())) < 1e-15 else math.copysign(math.inf, float(d.mean()))
    else:
        z = float(d.mean()) / (sd / math.sqrt(n))
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))), z


def kfolds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per cell, balanced, in random order."""
    return rng.permutation(np.arange(n) % min(k, n))


@dataclass
class JointResult:
    """Both forms and their mixture for one epoch budget."""

    fits: dict[str, FormFit]
    weights: dict[str, float]
    z: float
    favoured: str  # additive | product | indistinguishable | identical
    k: float
    k_boot: np.ndarray

    def summary(self, q: float) -> dict[str, Any]:
        def ci(v):
            v = v[np.isfinite(v)]
            return [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))] if v.size else None

        return {
            "favoured": self.favoured,
            "weights": {f: round(w, 4) for f, w in self.weights.items()},
            "held_out_z": None if not np.isfinite(self.z) else round(self.z, 3),
            "forms": {
                f: {
                    "exponent": r.k if np.isfinite(r.k) else None,
                    "ci": ci(r.k_boot) if r.k_boot.size else None,
                    "bootstrapped": r.boot_ok_frac is not None,
                    "alphas": r.alphas,
                    "held_out_rmse": float(np.sqrt(np.mean(r.cv_resid**2))),
                    "converged": r.converged,
                    "boot_ok_frac": r.boot_ok_frac,
                }
                for f, r in self.fits.items()
            },
        }


def fit_joint(
    U: np.ndarray,
    y: np.ndarray,
    lc: np.ndarray,
    W: np.ndarray,
    axes: list[str],
    rng: np.random.Generator,
    threshold: float = 0.9,
    n_folds: int = 5,
) -> JointResult:
    """Fit both forms, weigh them by held-out error, and mix their bootstrap distributions.

    With one model axis the forms coincide and only the additive one is fitted (``identical``).
    The point estimate is the weighted mean of the forms' k; the bootstrap draw b comes from the
    product form with probability w_product (the mixture widens the interval exactly when the
    forms disagree and the data do not favour either)."""
    folds = kfolds(len(y), n_folds, rng)
    if U.shape[1] <= 2:
        a = bootstrap_form(fit_form("additive", U, y, lc, folds, axes), U, y, lc, W)
        return JointResult({"additive": a}, {"additive": 1.0}, float("nan"), "identical", a.k, a.k_boot)
    a = fit_form("additive", U, y, lc, folds, axes)
    p = fit_form("product", U, y, lc, folds, axes)
    wp, z = form_weight(a.cv_resid, p.cv_resid, 0.5 * (a.delta + p.delta))
    # a form with weight below MIN_WEIGHT would supply fewer than 1 in 1000 resamples of the
    # mixture: its bootstrap is skipped (half the cost when the data are clear)
    B = W.shape[0]
    for f, w in ((a, 1 - wp), (p, wp)):
        if w >= MIN_WEIGHT:
            bootstrap_form(f, U, y, lc, W)
        else:
            f.k_boot = np.full(B, np.nan)
            f.boot_ok_frac = None
    favoured = "product" if wp >= threshold else "additive" if wp <= 1 - threshold else "indistinguishable"
    ks = [a.k, p.k]
    if all(np.isfinite(ks)):
        k = (1 - wp) * a.k + wp * p.k
    else:
        k = p.k if np.isfinite(p.k) else a.k
    if wp < MIN_WEIGHT:
        kb = a.k_boot
    elif wp > 1 - MIN_WEIGHT:
        kb = p.k_boot
    else:
        kb = np.where(rng.random(B) < wp, p.k_boot, a.k_boot) if B else np.zeros(0)
    return JointResult({"additive": a, "product": p}, {"additive": 1 - wp, "product": wp}, z, favoured, k, kb)
