"""Scaling-curve fits: saturating laws in log space, robust loss, multi-start, bootstrap CIs.

Every law is fitted to (compute C, error e) pairs with a Huber loss on log-error residuals
``log e_pred - log e_obs`` (Chinchilla approach 3 style), from a grid of starting points, then
polished with :func:`scipy.optimize.least_squares` (``loss="huber"``), whose convergence status
is reported. Compute enters as ``x = ln C - x_ref`` with ``x_ref`` the mean of ``ln C`` over the
fitted cells (conditioning); reported parameters are in the original units of ``C``.

Laws (``e`` the top-1 error, a fraction):

- ``saturating`` (M2): ``e(C) = e_inf + b * C**(-c)``; parameters ``e_inf, b, c``.
- ``offset`` (Zhai et al. 2022): ``e(C) = e_inf + b * (C + C0)**(-c)``; ``e_inf, b, c, C0``.
- ``powerlaw`` (log-linear, no asymptote): ``e(C) = b * C**(-c)``; ``b, c``. This is the
  documented fallback when a curve has too few distinct compute values for a 3-parameter law.

Uncertainty: bootstrap, ``n_boot`` resamples (1,000 by default), every resample refitted from
the full-data optimum with a vectorised (numpy) Levenberg-Marquardt / IRLS solver that fits all
resamples of all curves at once. Curves with >= 10 distinct compute values are resampled over
cells (multinomial weights; deviations widened by sqrt(n / (n - p))); shorter curves over
residuals (cells kept, centred log residuals rescaled by sqrt(n / (n - p)) and resampled),
because a case resample of 4-9 cells loses too many of its design points. Percentile
intervals. Resamples whose fit did not converge, or that have fewer distinct compute values than
parameters, are dropped from the intervals and counted.

Estimators are compared by extrapolation (:func:`compare_estimators`): the largest-compute cells
are held out, every law is fitted to the rest, and the mean absolute log-error on the held-out
cells is reported.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import norm as normal_dist
from scipy.stats import t as student_t

from rsscale.analysis.laws import LAWS, Law, ceiling_law
from rsscale.analysis.laws import AdditiveAxes as AdditiveAxes  # re-exported for recommend.py
from rsscale.analysis.threads import map_chunks, n_chunks, n_threads

# --------------------------------------------------------------------------- batched solver


def _huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def lm_batch(
    law: Law,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    th0: np.ndarray,
    delta: np.ndarray | float,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    max_iter: int = 200,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    lam0: float = 1e-2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised Levenberg-Marquardt on a weighted Huber loss, one problem per batch row.

    x, y, w: (G, n) (w = 0 pads); th0: (G, p); delta: scalar, (G,) or per point (G, n).
    Returns (theta, converged, cost), where cost is
    ``sum w * huber(r)`` and converged is True where ftol/xtol/gtol was met (scipy's meaning).
    Each iteration makes one ``law.y_jac`` call at the trial point and keeps its Jacobian where
    the step is accepted (the ceiling law's Newton inversion, the bulk of its cost, is then
    solved once per iteration instead of twice).
    """
    G = x.shape[0]
    p = th0.shape[1]
    d = np.asarray(delta, float)
    delta_all = np.broadcast_to(d, x.shape) if d.ndim == 2 else np.broadcast_to(d, (G,))[:, None]
    th = th0.copy()
    if lo is not None:
        th = np.clip(th, lo, hi)
    done = np.zeros(G, bool)
    y_th, Ja = law.y_jac(th, x)
    cost = (w * _huber(y_th - y, delta_all)).sum(-1)
    eye = np.eye(p)
    # Working copies of the rows still iterating; finished rows are frozen in place ("live" is
    # False) and the working set is compacted only when it has shrunk by a third, so that most
    # iterations do not copy the (possibly large) data arrays.
    idx = np.arange(G)
    xa, ya, wa, tha, da = x, y, w, th.copy(), delta_all
    loa, hia = (lo, hi) if lo is not None else (None, None)
    ra = y_th - ya
    ca = cost.copy()
    lam = np.full(G, lam0)
    live = np.ones(G, bool)
    for _ in range(max_iter):
        nlive = int(live.sum())
        if nlive == 0:
            break
        if nlive < 0.67 * len(idx):
            th[idx], cost[idx] = tha, ca
            keep = np.flatnonzero(live)
            idx = idx[keep]
            xa, ya, wa, tha, da, ra, ca, lam, Ja = (a[keep] for a in (xa, ya, wa, tha, da, ra, ca, lam, Ja))
            if lo is not None:
                loa, hia = loa[keep], hia[keep]
            live = np.ones(len(idx), bool)
        J = Ja  # Jacobian at the current point (kept from the step that reached it)
        hw = wa * np.minimum(1.0, da / np.maximum(np.abs(ra), 1e-300))
        JWt = (J * hw[..., None]).transpose(0, 2, 1)
        A = np.matmul(JWt, J)
        g = np.matmul(JWt, ra[..., None])[..., 0]
        dA = np.diagonal(A, axis1=1, axis2=2)
        if loa is not None:
            # active set: a parameter at a bound whose gradient points outward is frozen for
            # this step (else clipped steps crawl along the bound and never meet the tolerances)
            act = ((tha <= loa + 1e-12 * (1 + np.abs(loa))) & (g > 0)) | (
                (tha >= hia - 1e-12 * (1 + np.abs(hia))) & (g < 0)
            )
            if act.any():
                free = ~act
                g = np.where(act, 0.0, g)
                A = A * free[:, :, None] * free[:, None, :]
        gconv = np.abs(g).max(-1) <= gtol
        scale = np.maximum(dA, 1e-12 * np.maximum(dA.max(-1, keepdims=True), 1e-300))
        M = A + (lam[:, None, None] * scale[:, :, None]) * eye + 1e-14 * eye
        try:
            step = -np.linalg.solve(M, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(Mi, gi, rcond=None)[0] for Mi, gi in zip(M, g)])
        step = np.where(np.isfinite(step) & live[:, None], step, 0.0)
        thn = tha + step
        if lo is not None:
            thn = np.clip(thn, loa, hia)
        yn, Jn = law.y_jac(thn, xa)
        rn = yn - ya
        cn = (wa * _huber(rn, da)).sum(-1)
        ok = live & np.isfinite(cn) & (cn <= ca)
        dx = np.abs(thn - tha).max(-1)
        dF = ca - cn
        conv = gconv | (
            ok & ((dF <= ftol * ca + 1e-15 * wa.sum(-1)) | (dx <= xtol * (xtol + np.abs(tha).max(-1))))
        )
        tha = np.where(ok[:, None], thn, tha)
        ra = np.where(ok[:, None], rn, ra)
        Ja = np.where(ok[:, None, None], Jn, Ja)
        ca = np.where(ok, cn, ca)
        conv |= ca <= 1e-30
        lam = np.where(ok, np.maximum(lam / 3.0, 1e-12), np.where(live, lam * 4.0, lam))
        stuck = lam > 1e14  # no descent direction left: at a (possibly bound-constrained) minimum
        fin = live & (conv | stuck)
        done[idx[fin]] = True
        live &= ~fin
    th[idx], cost[idx] = tha, ca
    return th, done, cost


# ------------------------------------------------------------------------------------ results


@dataclass
class FitResult:
    """One fitted curve. ``params`` and ``ci`` are in natural units (C as given)."""

    key: Any
    law: str
    n: int
    n_unique: int
    x_ref: float
    theta: np.ndarray
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    converged: bool
    optimizer: dict[str, Any]
    boot_theta: np.ndarray  # (B, p); NaN rows for dropped resamples
    boot_ok: np.ndarray  # (B,) bool
    c_range: tuple[float, float]
    huber_delta: float
    notes: list[str] = field(default_factory=list)
    rms_log_resid: float = float("nan")
    law_obj: Law | None = None  # the law instance (the ceiling law carries its e0)
    selection: dict[str, Any] = field(default_factory=dict)  # how the law was chosen, if it was
    # every candidate law's held-out extrapolation error on one fold (estimators.csv rows)
    comparison: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lawobj(self) -> Law:
        return self.law_obj if self.law_obj is not None else LAWS[self.law]

    def log_err(self, C: np.ndarray, boot: bool = False) -> np.ndarray:
        """log predicted error at compute C: (len(C),) or, with boot, (B, len(C))."""
        xx = np.log(np.asarray(C, float)) - self.x_ref
        th = self.boot_theta if boot else self.theta[None, :]
        th = np.where(np.isfinite(th), th, self.theta[None, :])  # dropped rows: masked below
        out = self.lawobj.y(th, np.broadcast_to(xx, (th.shape[0], xx.size)))
        if boot:
            out = np.where(self.boot_ok[:, None], out, np.nan)
            return out
        return out[0]

    def predict(self, C: np.ndarray) -> np.ndarray:
        return np.exp(self.log_err(C))

    def band(self, C: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        yb = self.log_err(C, boot=True)[self.boot_ok]
        if yb.shape[0] == 0:
            nan = np.full(np.size(C), np.nan)
            return nan, nan
        q = (1 - level) / 2
        return np.exp(np.quantile(yb, q, axis=0)), np.exp(np.quantile(yb, 1 - q, axis=0))

    def boot_params(self) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            return self.lawobj.natural(self.boot_theta, self.x_ref)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"law": self.law, "n": self.n, "n_unique": self.n_unique}
        for k, v in self.params.items():
            row[k] = v
            lo, hi = self.ci.get(k, (np.nan, np.nan))
            row[f"{k}_lo"], row[f"{k}_hi"] = lo, hi
        row.update(
            converged=self.converged,
            optimizer_status=self.optimizer.get("status"),
            optimizer_message=self.optimizer.get("message"),
            starts=self.optimizer.get("starts"),
            starts_near_best=self.optimizer.get("starts_near_best"),
            bootstrap=self.optimizer.get("bootstrap"),
            boot_ok_frac=float(self.boot_ok.mean()) if self.boot_ok.size else float("nan"),
            c_min=self.c_range[0],
            c_max=self.c_range[1],
            huber_delta=self.huber_delta,
            rms_log_resid=self.rms_log_resid,
        )
        row.update(self.selection)
        row["notes"] = "; ".join(self.notes)
        return row


@dataclass
class CurveData:
    """One curve to fit: compute and error arrays (same length), and a key to find it again."""

    key: Any
    C: np.ndarray
    err: np.ndarray


def _pad(curves: list[CurveData]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = max(len(c.C) for c in curves)
    G = len(curves)
    x = np.zeros((G, n))
    y = np.zeros((G, n))
    w = np.zeros((G, n))
    xref = np.zeros(G)
    for i, c in enumerate(curves):
        lc = np.log(np.asarray(c.C, float))
        xref[i] = lc.mean()
        m = len(lc)
        x[i, :m] = lc - xref[i]
        y[i, :m] = np.log(np.asarray(c.err, float))
        w[i, :m] = 1.0
    return x, y, w, xref


def _solve_chunked(law, x, y, w, th0, delta, lo, hi, max_iter, chunk_elems=2_000_000, tol=1e-8):
    """lm_batch over the rows, in chunks that bound memory, solved on threads
    (:mod:`rsscale.analysis.threads`; the rows are independent, so the answer does not depend
    on the chunking)."""
    G, n = x.shape[:2]
    nt = n_threads()
    k = n_chunks(G, chunk_elems // max(n * law.n_params, 1), nt)
    bounds = np.linspace(0, G, k + 1).round().astype(int)

    def solve(i):
        sl = slice(bounds[i], bounds[i + 1])
        return lm_batch(
            law,
            x[sl],
            y[sl],
            w[sl],
            th0[sl],
            delta[sl],
            lo[sl],
            hi[sl],
            max_iter=max_iter,
            ftol=tol,
            xtol=tol,
        )

    outs = map_chunks(solve, range(k), nt)
    return tuple(np.concatenate([o[j] for o in outs]) for j in range(3))


def _rep(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(a, k, axis=0)


def _multistart(law: Law, x, y, w, delta, max_iter=200):
    """Fit every row from every start of the law's grid; return best theta, per-row info."""
    S0 = law.starts(x, y, w)  # (G,S,p)
    G, S, p = S0.shape
    lo, hi = law.bounds(x, y, w)
    th, conv, cost = _solve_chunked(
        law,
        _rep(x, S),
        _rep(y, S),
        _rep(w, S),
        S0.reshape(G * S, p),
        _rep(delta, S),
        _rep(lo, S),
        _rep(hi, S),
        max_iter,
    )
    th = th.reshape(G, S, p)
    cost = np.where(np.isfinite(cost), cost, np.inf).reshape(G, S)
    conv = conv.reshape(G, S)
    best = np.argmin(cost, axis=1)
    bth = th[np.arange(G), best]
    bcost = cost[np.arange(G), best]
    near = (cost <= bcost[:, None] * (1 + 1e-6) + 1e-12).sum(1)
    return bth, bcost, conv[np.arange(G), best], near, S, lo, hi


def _polish(law: Law, x, y, th0, delta, lo, hi) -> tuple[np.ndarray, dict[str, Any]]:
    """scipy least_squares (loss='huber') from the best multi-start point; its status is reported."""
    th0 = np.clip(th0, lo + 1e-12 * np.abs(lo), hi - 1e-12 * np.abs(hi))
    th0 = np.minimum(np.maximum(th0, lo), hi)

    d2 = np.broadcast_to(np.asarray(delta, float), y.shape) ** 2

    def fun(t):
        return law.y(t[None, :], x[None, :])[0] - y

    def loss(z):
        """Huber in scipy's z = r**2 form, with a threshold per point (f_scale = 1)."""
        big = z > d2
        sz = np.sqrt(np.maximum(z, 1e-300))
        d = np.sqrt(d2)
        rho = np.where(big, 2 * d * sz - d2, z)
        r1 = np.where(big, d / sz, 1.0)
        r2 = np.where(big, -0.5 * d / (sz * np.maximum(z, 1e-300)), 0.0)
        return np.stack([rho, r1, r2])

    def jac(t):
        return law.jac(t[None, :], x[None, :])[0]

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = least_squares(
                fun,
                th0,
                jac=jac,
                bounds=(lo, hi),
                loss=loss,
                method="trf",
                x_scale="jac",
                max_nfev=2000,
            )
        info = {
            "status": int(res.status),
            "success": bool(res.success and res.status > 0),
            "message": str(res.message),
            "nfev": int(res.nfev),
            "optimality": float(res.optimality),
        }
        return res.x, info
    except Exception as e:  # pragma: no cover - defensive: scipy rejects odd inputs
        return th0, {"status": -99, "success": False, "message": f"least_squares failed: {e}", "nfev": 0}


def point_deltas(delta: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-point Huber thresholds (G, n): ``delta`` everywhere except at each curve's largest
    compute value, whose cells keep the squared loss. The last points are the most informative
    about the extrapolation, and on a nearly flat curve a robust threshold scaled from the other
    residuals would treat a real final drop as an outlier."""
    xmax = np.where(w > 0, x, -np.inf).max(1, keepdims=True)
    last = (w > 0) & (x >= xmax - 1e-12)
    return np.where(last, 1e6, np.asarray(delta, float).reshape(-1, 1) * np.ones_like(x))


def _auto_delta(law: Law, x, y, w, max_iter):
    """Huber delta = 1.345 x robust sigma (MAD) of log residuals from a least-squares fit.

    That is the classic 95%-Gaussian-efficiency tuning; floored at 1e-3 (Chinchilla's value).
    """
    big = np.full(x.shape[0], 1e6)
    th, _, _, _, _, _, _ = _multistart(law, x, y, w, big, max_iter)
    r = law.y(th, x) - y
    d = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        ri = r[i][w[i] > 0]
        mad = np.median(np.abs(ri - np.median(ri))) * 1.4826 if ri.size else 0.0
        # a 3-parameter fit to few points shrinks residuals; correct the scale for it
        dof = max(ri.size - law.n_params, 1)
        d[i] = max(1.345 * mad * math.sqrt(ri.size / dof), 1e-3)
    return d


def fit_curves(
    curves: list[CurveData],
    law: str = "saturating",
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.9,
    huber_delta: float | str | np.ndarray = "auto",
    min_points: dict[str, int] | None = None,
    fallback: str | None = "powerlaw",
    max_iter: int = 2000,
    inflate: bool = True,
    bootstrap: str = "auto",
    case_min_points: int = 10,
    e0: float | list[float | None] | None = None,
    protect_last: bool = True,
    polish: bool = True,
    boot_max_iter: int = 300,
    boot_tol: float = 1e-5,
) -> list[FitResult]:
    """Fit ``law`` to every curve (with a fallback for short curves) plus bootstrap CIs.

    All curves and all their bootstrap resamples are solved together in one vectorised batch.
    ``min_points`` gives, per law, the fewest distinct compute values it is fitted to
    (default: saturating 6, offset 7, ceiling 7, powerlaw 2: at least 3 residual degrees of
    freedom); a shorter curve gets ``fallback``, with a note.

    ``e0``: the ceiling law's random-guess error, one value for all curves or one per curve
    (None: 1.0). ``protect_last`` keeps the squared loss at each curve's largest compute
    value (:func:`point_deltas`). ``polish=False`` skips the per-curve scipy polish (for the
    many throw-away fits of a held-out comparison). ``boot_max_iter`` caps the bootstrap refits'
    iterations (they start at the optimum; the few that crawl past 300 iterations kept the whole
    batch looping for little: they are counted as not converged and dropped instead);
    ``boot_tol``: their relative tolerance on cost decrease and step (1e-5: the refits start at
    the optimum, and a finer tolerance moved the intervals by far less than their width while
    tripling the bootstrap time of the 4-parameter laws).

    ``bootstrap``: ``cases`` resamples cells with replacement; ``residuals`` keeps the cells and
    resamples their (centred, dof-rescaled) log residuals around the fit; ``auto`` (default)
    uses cases for curves with at least ``case_min_points`` distinct compute values and
    residuals below that, where case resamples lose too many of the few design points.
    """
    mp = {"saturating": 6, "offset": 7, "ceiling": 7, "powerlaw": 2}
    mp.update(min_points or {})
    e0s = list(e0) if isinstance(e0, (list, tuple, np.ndarray)) else [e0] * len(curves)
    if len(e0s) != len(curves):
        raise ValueError(f"fit_curves: {len(e0s)} e0 values for {len(curves)} curves")
    rng = np.random.default_rng(seed)
    results: list[FitResult | None] = [None] * len(curves)
    by_law: dict[tuple[str, float | None], list[int]] = {}
    notes: dict[int, list[str]] = {}
    for i, c in enumerate(curves):
        C = np.asarray(c.C, float)
        e = np.asarray(c.err, float)
        ok = np.isfinite(C) & np.isfinite(e) & (C > 0) & (e > 0)
        notes[i] = []
        if not ok.all():
            notes[i].append(f"{int((~ok).sum())} cell(s) with non-positive/NaN compute or error dropped")
            curves[i] = c = CurveData(c.key, C[ok], e[ok])
        nu = np.unique(c.C).size
        chosen = law
        if nu < mp.get(law, 3):
            if fallback and nu >= mp.get(fallback, 2):
                notes[i].append(
                    f"too few distinct compute values for the '{law}' law (needs {mp.get(law)}): "
                    f"fitted the '{fallback}' form (log-linear) instead"
                )
                chosen = fallback
            else:
                notes[i].append(f"only {nu} distinct compute values: no fit")
                chosen = ""
        if chosen:
            by_law.setdefault((chosen, e0s[i] if chosen == "ceiling" else None), []).append(i)
    for (lname, le0), idx in by_law.items():
        lw = ceiling_law(le0) if lname == "ceiling" else LAWS[lname]
        sub = [curves[i] for i in idx]
        x, y, w, xref = _pad(sub)
        G = len(sub)
        if isinstance(huber_delta, str):
            if huber_delta != "auto":
                raise ValueError(f"huber_delta: a number, one per curve, or 'auto', got {huber_delta!r}")
            delta = _auto_delta(lw, x, y, w, max_iter)
        elif np.ndim(huber_delta) == 1:
            delta = np.asarray(huber_delta, float)[idx]
        else:
            delta = np.full(G, float(huber_delta))
        dp = point_deltas(delta, x, w) if protect_last else np.repeat(delta[:, None], x.shape[1], 1)
        th, _, mconv, near, S, lo, hi = _multistart(lw, x, y, w, dp, max_iter)
        infos = []
        for g in range(G):
            m = w[g] > 0
            if not polish:
                infos.append(
                    {
                        "status": None,
                        "success": False,
                        "message": "not polished",
                        "starts": int(S),
                        "starts_near_best": int(near[g]),
                        "multistart_converged": bool(mconv[g]),
                    }
                )
                continue
            tp, info = _polish(lw, x[g, m], y[g, m], th[g], dp[g, m], lo[g], hi[g])
            cost_ms = (_huber(lw.y(th[g : g + 1], x[g : g + 1, m])[0] - y[g, m], dp[g, m])).sum()
            cost_p = (_huber(lw.y(tp[None], x[g : g + 1, m])[0] - y[g, m], dp[g, m])).sum()
            if np.isfinite(cost_p) and cost_p <= cost_ms * (1 + 1e-9) + 1e-15:
                th[g] = tp
            info["starts"] = int(S)
            info["starts_near_best"] = int(near[g])
            info["multistart_converged"] = bool(mconv[g])
            infos.append(info)
        # ---- bootstrap: every resample of every curve in one batch
        B = int(n_boot)
        use_cases = np.zeros(G, bool)
        if B > 0:
            n_per = w.sum(1).astype(int)
            nu_per = np.array([np.unique(x[g, : n_per[g]]).size for g in range(G)])
            if bootstrap == "cases":
                use_cases[:] = True
            elif bootstrap == "auto":
                use_cases = nu_per >= case_min_points
            W = np.zeros((G, B, x.shape[1]))
            Y = np.repeat(y[:, None, :], B, axis=1)
            nuniq = np.full((G, B), 10**9)
            yhat = lw.y(th, x)
            for g in range(G):
                m = n_per[g]
                if use_cases[g]:
                    W[g, :, :m] = rng.multinomial(m, np.full(m, 1.0 / m), size=B)
                    # distinct compute values present in each resample
                    _, inv = np.unique(x[g, :m], return_inverse=True)
                    present = np.zeros((B, inv.max() + 1))
                    np.add.at(present.T, inv, W[g, :, :m].T)
                    nuniq[g] = (present > 0).sum(1)
                else:
                    # residual bootstrap (fixed design): centred log residuals, rescaled by
                    # sqrt(n / (n - p)) for the degrees of freedom the fit used
                    r = y[g, :m] - yhat[g, :m]
                    r = (r - r.mean()) * math.sqrt(m / max(m - lw.n_params, 1))
                    W[g, :, :m] = 1.0
                    Y[g, :, :m] = yhat[g, :m] + r[rng.integers(0, m, size=(B, m))]
            bth, bconv, _ = _solve_chunked(
                lw,
                _rep(x, B),
                Y.reshape(G * B, -1),
                W.reshape(G * B, -1),
                _rep(th, B),
                _rep(dp, B),
                _rep(lo, B),
                _rep(hi, B),
                min(max_iter, boot_max_iter),
                tol=boot_tol,
            )
            bth = bth.reshape(G, B, -1)
            bok = bconv.reshape(G, B) & (nuniq >= lw.n_params) & np.isfinite(bth).all(-1)
            if inflate:
                # Small-sample correction for the case bootstrap: its spread is that of a
                # variance estimate with denominator n instead of n - p; widen deviations from
                # the point estimate by sqrt(n / (n - p)) (the residual bootstrap's factor).
                fac = np.where(use_cases, np.sqrt(n_per / np.maximum(n_per - lw.n_params, 1)), 1.0)
                bth = th[:, None, :] + fac[:, None, None] * (bth - th[:, None, :])
                bth = np.clip(bth, lo[:, None, :], hi[:, None, :])
        for j, g in enumerate(idx):
            c = curves[g]
            with np.errstate(all="ignore"):
                nat = {k: float(v) for k, v in lw.natural(th[j], xref[j]).items()}
            m = w[j] > 0
            r = lw.y(th[j : j + 1], x[j : j + 1, m])[0] - y[j, m]
            if B > 0:
                infos[j]["bootstrap"] = "cells" if use_cases[j] else "residuals"
                bt = np.where(bok[j][:, None], bth[j], np.nan)
                with np.errstate(all="ignore"):
                    bnat = lw.natural(bt, xref[j])
                q = (1 - ci_level) / 2
                # small-sample widening of the reported exponent's interval (not of boot_theta,
                # nor of e_inf and b, which must stay positive): a percentile interval treats the
                # residual scale as known; with n - p residual degrees of freedom widen deviations
                # from the estimate by t_(n-p) / z at the interval's level, as a t interval
                # would (docs/calibration.md)
                dof = max(int(m.sum()) - lw.n_params, 1)
                tz = float(student_t.ppf(1 - q, dof) / normal_dist.ppf(1 - q))
                ci = {}
                for k, v in bnat.items():
                    vv = v[np.isfinite(v)]
                    if k == "c" and np.isfinite(nat.get(k, np.nan)):
                        vv = nat[k] + tz * (vv - nat[k])
                    ci[k] = (
                        (float(np.quantile(vv, q)), float(np.quantile(vv, 1 - q)))
                        if vv.size
                        else (np.nan, np.nan)
                    )
                okj = bok[j]
                frac_bad = 1 - okj.mean()
                if frac_bad > 0.05:
                    notes[g].append(
                        f"{frac_bad:.0%} of bootstrap resamples dropped (no convergence/degenerate)"
                    )
            else:
                bt = np.zeros((0, lw.n_params))
                okj = np.zeros(0, bool)
                ci = {k: (np.nan, np.nan) for k in nat}
            info = infos[j]
            conv = bool(info.get("success")) or bool(info.get("multistart_converged"))
            if not conv:
                notes[g].append("optimiser did not report convergence")
            for msg in lw.bound_notes(th[j], lo[j], hi[j]):
                notes[g].append(msg)
            results[g] = FitResult(
                key=c.key,
                law=lname,
                n=int(len(c.C)),
                n_unique=int(np.unique(c.C).size),
                x_ref=float(xref[j]),
                theta=th[j].copy(),
                params=nat,
                ci=ci,
                converged=conv,
                optimizer=info,
                boot_theta=bt,
                boot_ok=okj,
                c_range=(float(np.min(c.C)), float(np.max(c.C))),
                huber_delta=float(delta[j]),
                notes=notes[g],
                rms_log_resid=float(np.sqrt(np.mean(r**2))) if r.size else float("nan"),
                law_obj=lw,
            )
    out = []
    for i, r in enumerate(results):
        if r is None:
            c = curves[i]
            C = np.asarray(c.C, float)
            r = FitResult(
                key=c.key,
                law="none",
                n=int(len(C)),
                n_unique=int(np.unique(C).size),
                x_ref=float("nan"),
                theta=np.zeros(0),
                params={},
                ci={},
                converged=False,
                optimizer={"status": None, "message": "not fitted"},
                boot_theta=np.zeros((0, 0)),
                boot_ok=np.zeros(0, bool),
                c_range=(float(C.min()) if C.size else np.nan, float(C.max()) if C.size else np.nan),
                huber_delta=float("nan"),
                notes=notes[i],
            )
        out.append(r)
    return out


def auto_deltas(curves: list[CurveData], law: str = "saturating", max_iter: int = 200) -> np.ndarray:
    """The automatic Huber threshold of each curve (as ``huber_delta="auto"`` computes it for
    ``law``), to reuse across many fits of parts of the same curves."""
    x, y, w, _ = _pad(curves)
    return _auto_delta(LAWS[law], x, y, w, max_iter)


def fit_curve(C, err, law: str = "saturating", **kw) -> FitResult:
    """Fit one curve (see :func:`fit_curves`)."""
    return fit_curves([CurveData(None, np.asarray(C, float), np.asarray(err, float))], law=law, **kw)[0]


# ------------------------------------------------------------------ estimator comparison


def compare_estimators(
    curves: list[CurveData],
    laws: tuple[str, ...] = ("saturating", "offset", "ceiling", "powerlaw"),
    holdout_frac: float = 0.2,
    huber_delta: float | str = "auto",
    e0: float | list[float | None] | None = None,
) -> list[dict[str, Any]]:
    """Extrapolation test: hold out the largest-compute cells, fit each law on the rest.

    Holds out the cells at the top ``holdout_frac`` of distinct compute values (at least one
    value), and scores the mean absolute log-error ``|log e_pred - log e_obs|`` on them. A law
    is only scored on a curve where its training part has enough distinct compute values.
    Returns one row per (curve, law).
    """
    rows = []
    train, test, e0_tr = [], [], []
    e0s = list(e0) if isinstance(e0, (list, tuple, np.ndarray)) else [e0] * len(curves)
    for c, ce0 in zip(curves, e0s):
        C = np.asarray(c.C, float)
        u = np.unique(C)
        k = max(1, int(round(holdout_frac * u.size)))
        if u.size - k < 2:
            continue
        cut = u[-k]
        tr = cut > C
        train.append(CurveData(c.key, C[tr], np.asarray(c.err)[tr]))
        test.append((C[~tr], np.asarray(c.err, float)[~tr], u.size - k))
        e0_tr.append(ce0)
    if not train:
        return rows
    for lname in laws:
        fits = fit_curves(
            [CurveData(t.key, t.C.copy(), t.err.copy()) for t in train],
            law=lname,
            n_boot=0,
            huber_delta=huber_delta,
            fallback=None,
            e0=e0_tr,
            polish=False,  # a diagnostic over many fits: the vectorised multi-start suffices
        )
        for f, (Ct, et, ntr) in zip(fits, test):
            if f.law == "none":
                continue
            pe = f.log_err(Ct)
            rows.append(
                {
                    "key": f.key,
                    "law": lname,
                    "n_train_values": ntr,
                    "n_test": int(Ct.size),
                    "extrap_ratio": float(Ct.max() / f.c_range[1]),
                    "mean_abs_log_err": float(np.mean(np.abs(pe - np.log(et)))),
                    "converged": f.converged,
                }
            )
    return rows
