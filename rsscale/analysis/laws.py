"""Scaling laws as batched curves ``y = log e`` of ``x = ln C - x_ref`` (values, Jacobians,
start grids, bounds), for the solver in :mod:`rsscale.analysis.fit`.

Laws (``e`` the top-1 error, a fraction):

- ``saturating`` (M2): ``e(C) = e_inf + b * C**(-c)``; parameters ``e_inf, b, c``.
- ``offset`` (Zhai et al. 2022): ``e(C) = e_inf + b * (C + C0)**(-c)``; ``e_inf, b, c, C0``.
- ``powerlaw`` (log-linear, no asymptote): ``e(C) = b * C**(-c)``; ``b, c``.
- ``ceiling`` (M4, Alabdulmohsin et al. 2022): ``(e - e_inf) / (e0 - e)**alpha = beta * C**(-c)``
  with ``e0`` the random-guess error ``1 - 1/num_classes`` (fixed, not fitted); ``e_inf, beta,
  c, alpha``. Curves that start near ``e0`` steepen in log-log before they flatten, which the
  other laws cannot follow. Solved for ``e`` by a monotone Newton iteration (see
  :func:`solve_ceiling`).
"""

from __future__ import annotations

import threading

import numpy as np

# ----------------------------------------------------------------------------------------- laws


class Law:
    """A curve ``y = log e`` as a function of ``x = ln C - x_ref``, vectorised over a batch."""

    name: str = ""
    param_names: tuple[str, ...] = ()
    theta_names: tuple[str, ...] = ()

    @property
    def n_params(self) -> int:
        return len(self.theta_names)

    def y(self, th: np.ndarray, x: np.ndarray) -> np.ndarray:  # th (G,p), x (G,n) -> (G,n)
        raise NotImplementedError

    def jac(self, th: np.ndarray, x: np.ndarray) -> np.ndarray:  # -> (G,n,p)
        raise NotImplementedError

    def y_jac(self, th: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Value and Jacobian together (laws whose two share costly parts override this)."""
        return self.y(th, x), self.jac(th, x)

    def starts(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:  # -> (G,S,p)
        raise NotImplementedError

    def bounds(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def natural(self, th: np.ndarray, x_ref: np.ndarray | float) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def bound_notes(self, th: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[str]:
        at_lo = np.isclose(th, lo, rtol=0, atol=1e-6)
        at_hi = np.isclose(th, hi, rtol=0, atol=1e-6)
        names = [self.theta_names[k] for k in np.flatnonzero(at_lo | at_hi)]
        return [f"parameter(s) at a bound: {', '.join(names)}"] if names else []


def _wstats(x, y, w):
    sw = np.maximum(w.sum(-1), 1e-300)
    xm = (w * x).sum(-1) / sw
    big = np.where(w > 0, y, np.inf)
    small = np.where(w > 0, y, -np.inf)
    xbig = np.where(w > 0, x, -np.inf)
    xsmall = np.where(w > 0, x, np.inf)
    return xm, big.min(-1), small.max(-1), xsmall.min(-1), xbig.max(-1)


def _amp_start(x, y, w, c, linf):
    """Intercept a of log(e - e_inf) = a - c x by weighted mean, for given c and e_inf."""
    e = np.exp(y)[:, None, :]
    resid = np.log(np.maximum(e - np.exp(linf)[..., None], 1e-12 * e))
    a = ((resid + c[..., None] * x[:, None, :]) * w[:, None, :]).sum(-1) / np.maximum(
        w.sum(-1)[:, None], 1e-300
    )
    return a


class Saturating(Law):
    """M2 in log space. Internally theta = (y0, m, u), a well-conditioned chart of
    ``y = logaddexp(a - c x, l)``: y0 = y(0) (log error at the reference compute), u = a - l (the
    power term's share at x = 0 is sigmoid(u)), m = c * sigmoid(u) (minus the local log-log
    slope at x = 0). The usual (a, c, l) chart has a curved e_inf-vs-c valley in which
    Levenberg-Marquardt crawls; in this one it converges in tens of iterations."""

    name = "saturating"
    param_names = ("e_inf", "b", "c")
    theta_names = ("y0", "m", "u")

    @staticmethod
    def to_acl(th):
        y0, m, u = th[..., 0], th[..., 1], th[..., 2]
        s = sigmoid(u)
        return y0 + logsigmoid(u), m / s, y0 + logsigmoid(-u)

    @staticmethod
    def from_acl(a, c, l):
        u = a - l
        return np.stack([np.logaddexp(a, l), c * sigmoid(u), u], axis=-1)

    def y(self, th, x):
        a, c, l = self.to_acl(th)
        return np.logaddexp(a[:, None] - c[:, None] * x, l[:, None])

    def jac(self, th, x):
        return self.y_jac(th, x)[1]

    def y_jac(self, th, x):
        a, c, l = self.to_acl(th)
        m, u = th[:, 1:2], th[:, 2:3]
        su = sigmoid(u)
        t = a[:, None] - c[:, None] * x - l[:, None]
        sx = sigmoid(t)
        d_m = -x * sx / su
        d_u = sx * (1 - su) + x * sx * m * (1 - su) / su - (1 - sx) * su
        y = l[:, None] + np.logaddexp(0.0, t)
        return y, np.stack([np.ones_like(x), d_m, d_u], axis=-1)

    def starts(self, x, y, w):
        _, ymin, _, _, _ = _wstats(x, y, w)
        cs = np.array([0.05, 0.15, 0.3, 0.6, 1.0, 2.0])
        fr = np.array([1e-4, 0.5, 0.9])
        C, F = np.meshgrid(cs, fr, indexing="ij")
        C, F = C.ravel(), F.ravel()
        G = x.shape[0]
        c = np.broadcast_to(C, (G, C.size))
        linf = ymin[:, None] + np.log(F)[None, :]
        a = _amp_start(x, y, w, c, linf)
        return self.from_acl(a, c, linf)

    def bounds(self, x, y, w):
        _, ymin, ymax, _, _ = _wstats(x, y, w)
        G = x.shape[0]
        lo = np.stack([ymin - 5.0, np.full(G, 1e-6), np.full(G, -20.0)], -1)
        hi = np.stack([ymax + 5.0, np.full(G, 10.0), np.full(G, 25.0)], -1)
        return lo, hi

    def natural(self, th, x_ref):
        a, c, l = self.to_acl(th)
        return {"e_inf": np.exp(l), "b": np.exp(a + c * x_ref), "c": c}

    def bound_notes(self, th, lo, hi):
        out = []
        if th[2] >= hi[2] - 1e-3:
            out.append("no saturation visible: e_inf at its lower limit (effectively a pure power law)")
        if th[2] <= lo[2] + 1e-3:
            out.append("the power term is negligible: the curve is flat at e_inf")
        if th[1] <= lo[1] * 1.001 or th[1] >= hi[1] * 0.999:
            out.append("the local slope is at its limit")
        return out


class PowerLaw(Law):
    name = "powerlaw"
    param_names = ("b", "c")
    theta_names = ("a", "c")  # y = a - c x

    def y(self, th, x):
        return th[:, 0:1] - th[:, 1:2] * x

    def jac(self, th, x):
        return np.stack([np.ones_like(x), -x], axis=-1)

    def starts(self, x, y, w):
        sw = np.maximum(w.sum(-1), 1e-300)
        xm = (w * x).sum(-1) / sw
        ym = (w * y).sum(-1) / sw
        sxx = (w * (x - xm[:, None]) ** 2).sum(-1)
        sxy = (w * (x - xm[:, None]) * (y - ym[:, None])).sum(-1)
        slope = np.where(sxx > 0, sxy / np.maximum(sxx, 1e-300), 0.0)
        a = ym - slope * xm
        return np.stack([a, -slope], -1)[:, None, :]

    def bounds(self, x, y, w):
        G = x.shape[0]
        lo = np.stack([np.full(G, -60.0), np.full(G, -10.0)], -1)
        hi = np.stack([np.full(G, 60.0), np.full(G, 10.0)], -1)
        return lo, hi

    def natural(self, th, x_ref):
        a, c = th[..., 0], th[..., 1]
        return {"b": np.exp(a + c * x_ref), "c": c}


class Offset(Law):
    name = "offset"
    param_names = ("e_inf", "b", "c", "C0")
    theta_names = ("a", "c", "l", "d")  # y = logaddexp(a - c*logaddexp(x, d), l)

    def y(self, th, x):
        u = np.logaddexp(x, th[:, 3:4])
        return np.logaddexp(th[:, 0:1] - th[:, 1:2] * u, th[:, 2:3])

    def jac(self, th, x):
        return self.y_jac(th, x)[1]

    def y_jac(self, th, x):
        u = np.logaddexp(x, th[:, 3:4])
        t = th[:, 0:1] - th[:, 1:2] * u - th[:, 2:3]
        s = sigmoid(t)
        du = sigmoid(th[:, 3:4] - x)
        y = th[:, 2:3] + np.logaddexp(0.0, t)
        return y, np.stack([s, -u * s, 1.0 - s, -th[:, 1:2] * s * du], axis=-1)

    def starts(self, x, y, w):
        _, ymin, _, xmin, xmax = _wstats(x, y, w)
        cs = np.array([0.1, 0.3, 0.6, 1.2])
        fr = np.array([1e-4, 0.5, 0.9])
        ds = np.array([-6.0, 0.0, 0.5])  # offsets relative to xmin, in units of the x range
        C, F, D = np.meshgrid(cs, fr, ds, indexing="ij")
        C, F, D = C.ravel(), F.ravel(), D.ravel()
        G = x.shape[0]
        c = np.broadcast_to(C, (G, C.size))
        linf = ymin[:, None] + np.log(F)[None, :]
        d = xmin[:, None] + D[None, :] * np.maximum(xmax - xmin, 1.0)[:, None]
        u = np.logaddexp(x[:, None, :], d[..., None])
        e = np.exp(y)[:, None, :]
        resid = np.log(np.maximum(e - np.exp(linf)[..., None], 1e-12 * e))
        a = ((resid + c[..., None] * u) * w[:, None, :]).sum(-1) / np.maximum(w.sum(-1)[:, None], 1e-300)
        return np.stack([a, c, linf, d], axis=-1)

    def bounds(self, x, y, w):
        _, ymin, ymax, xmin, xmax = _wstats(x, y, w)
        G = x.shape[0]
        lo = np.stack([np.full(G, -60.0), np.full(G, 1e-4), ymin - 25.0, xmin - 30.0], -1)
        hi = np.stack([np.full(G, 60.0), np.full(G, 10.0), ymax + 0.5, xmax + 3.0], -1)
        return lo, hi

    def natural(self, th, x_ref):
        a, c, l, d = th[..., 0], th[..., 1], th[..., 2], th[..., 3]
        return {"e_inf": np.exp(l), "b": np.exp(a + c * x_ref), "c": c, "C0": np.exp(d + x_ref)}


def solve_ceiling(
    T: np.ndarray, alpha: np.ndarray, max_iter: int = 60, z0: np.ndarray | None = None
) -> np.ndarray:
    """The root z of ``log sigmoid(z) - alpha * log sigmoid(-z) = T`` (elementwise).

    The left side is increasing with asymptotes ``z`` (z -> -inf) and ``alpha z`` (z -> +inf),
    concave for alpha < 1 and convex for alpha > 1, so Newton's method started from the
    asymptote on the near side of the root (``max(T, T/alpha)`` when concave, ``min`` when
    convex) converges monotonically, without bracketing or step control. ``z0``: a warm start
    (the previous solution of a nearby problem: two or three steps instead of six to ten); if
    Newton does not converge from it, the monotone start is used.

    The solver's inner loop: elements stop iterating once their step is below 1e-12 relative;
    the working set is compacted only when some have stopped (a warm start usually takes every
    element through the same two or three steps).
    """
    T, alpha = np.broadcast_arrays(np.asarray(T, float), np.maximum(np.asarray(alpha, float), 1e-6))
    Tf, af = T.ravel(), alpha.ravel()

    def cold(Tv, av):
        return np.where(av < 1.0, np.maximum(Tv, Tv / av), np.minimum(Tv, Tv / av))

    if z0 is None:
        z = cold(Tf, af)
    else:
        z = np.array(z0, float).ravel()  # a copy
        bad = ~np.isfinite(z)
        if bad.any():
            z[bad] = cold(Tf[bad], af[bad])
    act: np.ndarray | None = None  # None: every element is still iterating
    za, Ta, aa = z, Tf, af
    for _ in range(max_iter):
        sp = np.logaddexp(0.0, -za)  # -log sigmoid(z); -log sigmoid(-z) = z + sp
        s = np.exp(-sp)
        # Newton step (alpha (z + sp) - sp - T) / ((1 - s) + alpha s), in place
        num = za + sp
        num *= aa
        num -= sp
        num -= Ta
        den = aa - 1.0
        den *= s
        den += 1.0
        num /= den
        za = za - num
        if act is None:
            z = za
        else:
            z[act] = za
        more = np.abs(num) > 1e-12 * (1.0 + np.abs(za))
        if not more.any():
            return z.reshape(T.shape)
        if more.all():
            continue
        if act is None:
            act = np.flatnonzero(more)
        else:
            act = act[more]
        za, Ta, aa = za[more], Ta[more], aa[more]
    return z.reshape(T.shape) if z0 is None else solve_ceiling(T, alpha, max_iter)


class Ceiling(Law):
    """M4: ``(e - e_inf) / (e0 - e)**alpha = beta * C**(-c)``, e0 fixed (random-guess error).

    theta = (a, c, l, alpha) with a = log beta at x = 0 and l = log e_inf. Writing
    ``e = e_inf + D sigmoid(z)`` with ``D = e0 - e_inf`` turns the law into
    ``log sigmoid(z) - alpha log sigmoid(-z) = a - c x - (1 - alpha) log D`` (solved by
    :func:`solve_ceiling`); the Jacobian follows by implicit differentiation.
    """

    name = "ceiling"
    param_names = ("e_inf", "beta", "c", "alpha", "e0")
    theta_names = ("a", "c", "l", "alpha")

    def __init__(self, e0: float = 1.0):
        if not 0.0 < e0 <= 1.0:
            raise ValueError(f"ceiling law: e0 (the random-guess error) must be in (0, 1], got {e0}")
        self.e0 = float(e0)
        # (x, z) of the last solve, per thread (the solver's chunks run on threads)
        self._tls = threading.local()

    def _parts(self, th, x):
        a, c, l, al = (th[:, k : k + 1] for k in range(4))
        logD = np.log(np.maximum(self.e0 - np.exp(l), 1e-300))
        T = a - c * x - (1.0 - al) * logD
        # warm start when called again on the same x array (successive solver iterations): the
        # root is unique, so the start changes the work, not the answer
        last = getattr(self._tls, "last", None)
        z0 = last[1] if last is not None and last[0] is x and last[1].shape == T.shape else None
        z = solve_ceiling(T, np.broadcast_to(al, T.shape), z0=z0)
        self._tls.last = (x, z)
        sp = np.logaddexp(0.0, -z)  # -log sigmoid(z); -log sigmoid(-z) = z + sp
        y = np.logaddexp(l, logD - sp)
        return l, al, logD, z, sp, y

    def y(self, th, x):
        return self._parts(th, x)[-1]

    def jac(self, th, x):
        return self.y_jac(th, x)[1]

    def y_jac(self, th, x):
        """One Newton solve for both (the solve is most of the cost of either)."""
        l, al, logD, z, sp, y = self._parts(th, x)
        s = np.exp(-sp)  # sigmoid(z)
        zsp = z + sp
        sm = np.exp(-zsp)  # sigmoid(-z) = 1 - s, without cancellation
        ie = np.exp(-y)  # 1 / e
        # (de/dT) / e = D s (1 - s) / (h'(z) e), h'(z) = (1 - s) + alpha s
        common = sm * s
        common *= ie
        common *= np.exp(logD)
        common /= sm + al * s
        J = np.empty(x.shape + (4,))
        J[..., 0] = common
        np.multiply(x, common, out=J[..., 1])
        J[..., 1] *= -1.0
        d_l = J[..., 2]
        np.multiply(ie, sm, out=d_l)
        d_l *= np.exp(l)
        d_l += common * ((1.0 - al) * np.exp(l - logD))
        np.subtract(logD, zsp, out=J[..., 3])
        J[..., 3] *= common
        return y, J

    def starts(self, x, y, w):
        """Grid over (alpha, e_inf / min e); (a, c) by weighted least squares, exact given those,
        since ``log(e - e_inf) - alpha log(e0 - e) = a - c x``."""
        _, ymin, _, _, _ = _wstats(x, y, w)
        als = np.array([0.05, 0.3, 1.0, 2.0])
        fr = np.array([1e-4, 0.3, 0.7, 0.95])
        AL, F = np.meshgrid(als, fr, indexing="ij")
        AL, F = AL.ravel(), F.ravel()
        G, S = x.shape[0], AL.size
        e = np.exp(y)[:, None, :]
        l = np.minimum(ymin[:, None] + np.log(F)[None, :], np.log(self.e0) - 1e-3)
        t = np.log(np.maximum(e - np.exp(l)[..., None], 1e-12 * e)) - AL[None, :, None] * np.log(
            np.maximum(self.e0 - e, 1e-6)
        )
        ww = np.broadcast_to(w[:, None, :], t.shape)
        sw = np.maximum(ww.sum(-1), 1e-300)
        xx = np.broadcast_to(x[:, None, :], t.shape)
        xm = (ww * xx).sum(-1) / sw
        tm = (ww * t).sum(-1) / sw
        sxx = (ww * (xx - xm[..., None]) ** 2).sum(-1)
        sxt = (ww * (xx - xm[..., None]) * (t - tm[..., None])).sum(-1)
        c = np.clip(-np.where(sxx > 0, sxt / np.maximum(sxx, 1e-300), -0.3), 1e-3, 5.0)
        a = tm + c * xm
        return np.stack([a, c, l, np.broadcast_to(AL, (G, S))], axis=-1)

    def bounds(self, x, y, w):
        _, ymin, ymax, _, _ = _wstats(x, y, w)
        G = x.shape[0]
        l_hi = np.minimum(ymax + 0.5, np.log(self.e0) - 1e-3)
        l_lo = np.minimum(ymin - 25.0, l_hi - 1.0)
        lo = np.stack([np.full(G, -60.0), np.full(G, 1e-4), l_lo, np.full(G, 1e-3)], -1)
        hi = np.stack([np.full(G, 60.0), np.full(G, 10.0), l_hi, np.full(G, 10.0)], -1)
        return lo, hi

    def natural(self, th, x_ref):
        a, c, l, al = th[..., 0], th[..., 1], th[..., 2], th[..., 3]
        return {
            "e_inf": np.exp(l),
            "beta": np.exp(a + c * x_ref),
            "c": c,
            "alpha": al,
            "e0": np.full_like(a, self.e0),
        }


_CEILINGS: dict[float, Ceiling] = {}


def ceiling_law(e0: float | None) -> Ceiling:
    """The ceiling law for random-guess error ``e0`` (1.0 when unknown), one instance per value."""
    e0 = 1.0 if e0 is None or not np.isfinite(e0) else float(e0)
    if e0 not in _CEILINGS:
        _CEILINGS[e0] = Ceiling(e0)
    return _CEILINGS[e0]


# class counts of the datasets rsscale knows (rsscale/data/registry.py), by results-table name
KNOWN_CLASSES: dict[str, int] = {"fashion_mnist": 10, "imagenet": 1000, "synthetic": 10}


def random_guess_error(num_classes: int | None) -> float | None:
    """``1 - 1/num_classes``: the error of guessing, the ceiling law's e0 (None if unknown)."""
    if num_classes is None:
        return None
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return 1.0 - 1.0 / int(num_classes)


LAWS: dict[str, Law] = {law.name: law for law in (Saturating(), PowerLaw(), Offset(), ceiling_law(None))}


class AdditiveAxes(Law):
    """``e = E + sum_i A_i exp(-alpha_i u_i)`` over several log axes u_i (x: (G, n, m)), i.e.
    ``e = E + sum_i A_i' X_i^-alpha_i`` (Chinchilla's approach-3 form, one term per axis).
    theta = (log E, log A_1, alpha_1, ..., log A_m, alpha_m)."""

    name = "additive"

    def __init__(self, m: int):
        self.m = m
        self.theta_names = ("lE",) + tuple(f"{k}{i}" for i in range(m) for k in ("lA", "alpha"))
        self.param_names = self.theta_names

    def _terms(self, th, x):
        G, n = x.shape[:2]
        ts = [np.broadcast_to(th[:, 0:1], (G, n))]
        for i in range(self.m):
            ts.append(th[:, 1 + 2 * i : 2 + 2 * i] - th[:, 2 + 2 * i : 3 + 2 * i] * x[..., i])
        return ts

    @staticmethod
    def _lse(ts):
        mx = ts[0]
        for t in ts[1:]:
            mx = np.maximum(mx, t)
        acc = np.exp(ts[0] - mx)
        for t in ts[1:]:
            acc += np.exp(t - mx)
        return mx + np.log(acc)

    def y(self, th, x):
        return self._lse(self._terms(th, x))

    def jac(self, th, x):
        ts = self._terms(th, x)
        yy = self._lse(ts)
        J = np.empty(x.shape[:2] + (1 + 2 * self.m,))
        J[..., 0] = np.exp(ts[0] - yy)
        for i in range(self.m):
            wi = np.exp(ts[1 + i] - yy)
            J[..., 1 + 2 * i] = wi
            J[..., 2 + 2 * i] = -wi * x[..., i]
        return J

    def starts(self, x, y, w):
        ymin = np.where(w > 0, y, np.inf).min(1)
        out = []
        for a0 in (0.1, 0.3, 0.8):
            for fe in (0.2, 0.6, 0.9):
                amp = ymin + np.log((1 - fe) / self.m)
                row = [ymin + np.log(fe)]
                for _ in range(self.m):
                    row += [amp, np.full_like(ymin, a0)]
                out.append(np.stack(row, -1))
        return np.stack(out, axis=1)

    def bounds(self, x, y, w):
        ymin = np.where(w > 0, y, np.inf).min(1)
        ymax = np.where(w > 0, y, -np.inf).max(1)
        G = x.shape[0]
        lo = [ymin - 20.0] + [np.full(G, -40.0), np.full(G, 1e-3)] * self.m
        hi = [ymax + 1.0] + [np.full(G, 20.0), np.full(G, 5.0)] * self.m
        return np.stack(lo, -1), np.stack(hi, -1)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def logsigmoid(z):
    """log(sigmoid(z)), stable."""
    return -np.logaddexp(0.0, -z)
