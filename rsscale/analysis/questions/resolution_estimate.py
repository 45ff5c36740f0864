"""**Resolution.** Per epoch budget, two estimates of the exponent ``k`` of the compute-optimal
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

from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis.efficientnet import EFFICIENTNET_EXPONENT, efficientnet_table_exponent
from rsscale.analysis.joint import fit_joint
from rsscale.analysis.power import equivalence_confidence, power_summary
from rsscale.analysis.study import Analysis, Settings, num_key


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
            by_e[num_key(e)] = {"exponent": None, "reason": "only one resolution at this epoch budget"}
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
        by_e[num_key(e)] = {
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
            by_e[num_key(e)] = {"exponent": None, "reason": "resolution does not vary at this epoch budget"}
            continue
        if g["resolution"].nunique() < 3:
            by_e[num_key(e)] = {
                "exponent": None,
                "reason": "fewer than 3 resolutions: its exponent cannot be fitted",
            }
            continue
        axes = [a for a in AXES if a != "resolution" and g[a].nunique() >= 3] + ["resolution"]
        npar = 1 + len(axes) + len(axes) * (len(axes) + 1) // 2
        if len(g) < npar + 3:
            by_e[num_key(e)] = {"exponent": None, "reason": f"{len(g)} cells for a {npar}-parameter surface"}
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
        by_e[num_key(e)] = entry
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
