"""Learning curves drawn from known forms, with noise: material to test estimators on.

Six forms, four of which the fitted laws contain (``saturating``, ``offset``, ``powerlaw``,
``ceiling``) and two they do not (``broken``: a smoothly broken power law whose exponent
steepens at a break; ``sigmoid``: error falling from the random-guess ceiling along a logistic
curve in log compute), so a comparison on them is not circular. Compute spans ``decades``
decades from 1e6 on a log-even grid; noise is multiplicative (log-normal, sigma drawn in
[0.005, 0.03] unless given). Each curve carries its noise-free truth for scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsscale.analysis.laws import ceiling_law

FORMS: tuple[str, ...] = ("saturating", "offset", "powerlaw", "ceiling", "broken", "sigmoid")
C_MIN = 1e6


@dataclass
class GenCurve:
    """One generated curve: observed ``err`` and noise-free ``truth`` at compute ``C``."""

    form: str
    C: np.ndarray
    err: np.ndarray
    truth: np.ndarray
    e0: float
    params: dict[str, float] = field(default_factory=dict)


def true_error(form: str, C: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """The noise-free error of ``form`` with parameters ``p`` at compute ``C``."""
    C = np.asarray(C, float)
    x = np.log(C / C_MIN)
    if form == "saturating":
        return p["e_inf"] + p["b"] * np.exp(-p["c"] * x)
    if form == "offset":
        return p["e_inf"] + p["b"] * ((C + p["C0"]) / C_MIN) ** -p["c"]
    if form == "powerlaw":
        return p["b"] * np.exp(-p["c"] * x)
    if form == "ceiling":
        law = ceiling_law(p["e0"])
        th = np.array([[np.log(p["beta"]), p["c"], np.log(p["e_inf"]), p["alpha"]]])
        return np.exp(law.y(th, x[None, :]))[0]
    if form == "broken":
        xb = np.log(p["C_break"] / C_MIN)
        return p["e_inf"] + p["b"] * np.exp(-p["c1"] * x) * (1 + np.exp(x - xb)) ** -(p["c2"] - p["c1"])
    if form == "sigmoid":
        return p["e_inf"] + (p["e0"] - p["e_inf"]) / (1 + np.exp(p["k"] * (x - p["m"])))
    raise ValueError(f"unknown curve form {form!r}; known: {', '.join(FORMS)}")


def draw_params(form: str, rng: np.random.Generator, e0: float = 0.9) -> dict[str, float]:
    """Random parameters of ``form`` that keep the error inside (0, e0) over the grid."""
    u = rng.uniform
    if form == "saturating":
        e_inf = u(0.01, 0.15)
        return {"e_inf": e_inf, "b": u(0.1, 0.6), "c": u(0.2, 0.8)}
    if form == "offset":
        e_inf, c, C0 = u(0.01, 0.15), u(0.3, 1.0), C_MIN * np.exp(u(-1.0, 3.0))
        return {"e_inf": e_inf, "b": u(0.1, 0.6) * (1 + C0 / C_MIN) ** c, "c": c, "C0": C0}
    if form == "powerlaw":
        return {"b": u(0.3, 0.8), "c": u(0.05, 0.3)}
    if form == "ceiling":
        e_inf, alpha, first = u(0.02, 0.2), u(0.3, 1.5), u(0.6, 0.85) * e0
        return {
            "e_inf": e_inf,
            "beta": (first - e_inf) / (e0 - first) ** alpha,
            "c": u(0.2, 0.7),
            "alpha": alpha,
            "e0": e0,
        }
    if form == "broken":
        c1 = u(0.05, 0.3)
        return {
            "e_inf": u(0.01, 0.1),
            "b": u(0.2, 0.6),
            "c1": c1,
            "c2": c1 + u(0.2, 0.6),
            "C_break": C_MIN * np.exp(u(2.0, 6.0)),
        }
    if form == "sigmoid":
        return {"e_inf": u(0.02, 0.2), "e0": e0, "k": u(0.4, 1.2), "m": u(1.0, 4.0)}
    raise ValueError(f"unknown curve form {form!r}; known: {', '.join(FORMS)}")


def draw_curve(
    form: str,
    rng: np.random.Generator,
    n: int = 10,
    decades: float = 4.0,
    noise: float | None = None,
    e0: float = 0.9,
) -> GenCurve:
    """One curve of ``form``: ``n`` compute values over ``decades`` decades, noisy errors."""
    if n < 2:
        raise ValueError(f"a curve needs at least 2 compute values, got n={n}")
    p = draw_params(form, rng, e0)
    C = C_MIN * np.logspace(0.0, decades, n)
    truth = true_error(form, C, p)
    sigma = rng.uniform(0.005, 0.03) if noise is None else float(noise)
    err = np.clip(truth * np.exp(rng.normal(0.0, sigma, n)), 1e-6, 1.0)
    return GenCurve(form, C, err, truth, e0, {**p, "noise": sigma})


def draw_curves(forms: tuple[str, ...] = FORMS, per_form: int = 20, seed: int = 0, **kw) -> list[GenCurve]:
    """``per_form`` curves of every form in ``forms`` (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    return [draw_curve(f, rng, **kw) for f in forms for _ in range(per_form)]
