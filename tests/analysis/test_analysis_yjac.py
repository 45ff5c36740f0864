"""The solver's combined value + Jacobian (``Law.y_jac``) agrees with ``y`` and with finite
differences for every law: the LM solver uses only ``y_jac``, so a wrong shared part would
silently change every fit."""

import numpy as np
import pytest

from rsscale.analysis.joint import make_law
from rsscale.analysis.laws import LAWS, AdditiveAxes, ceiling_law


@pytest.mark.parametrize("law", [LAWS["saturating"], LAWS["offset"], LAWS["powerlaw"], ceiling_law(0.9)])
def test_y_jac_matches_y_and_finite_differences(law):
    rng = np.random.default_rng(3)
    G, n = 12, 9
    x = np.sort(rng.uniform(-4, 4, (G, n)), axis=1)
    y = np.log(0.05 + 0.5 * np.exp(-0.4 * (x + 4)) + 0.01 * rng.random((G, n)))
    w = np.ones((G, n))
    th = law.starts(x, y, w)[:, 0, :].copy()
    lo, hi = law.bounds(x, y, w)
    th = np.clip(th + 0.05 * rng.standard_normal(th.shape), lo + 1e-3, hi - 1e-3)
    yv, J = law.y_jac(th, x)
    np.testing.assert_allclose(yv, law.y(th, x), rtol=0, atol=1e-10)
    np.testing.assert_allclose(J, law.jac(th, x), rtol=0, atol=1e-10)
    h = 1e-6
    for k in range(th.shape[1]):
        tp, tm = th.copy(), th.copy()
        tp[:, k] += h
        tm[:, k] -= h
        fd = (law.y(tp, x.copy()) - law.y(tm, x.copy())) / (2 * h)
        np.testing.assert_allclose(J[..., k], fd, rtol=1e-4, atol=1e-6)


def test_default_y_jac_of_a_law_without_override():
    law = AdditiveAxes(2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 2))
    th = np.array([[-3.0, -1.0, 0.3, -1.5, 0.5]] * 3)
    yv, J = law.y_jac(th, x)
    np.testing.assert_array_equal(yv, law.y(th, x))
    np.testing.assert_array_equal(J, law.jac(th, x))


@pytest.mark.parametrize("form", ["additive", "product"])
def test_joint_law_y_jac_matches_y_and_finite_differences(form):
    """The joint laws of the resolution question (joint.py) share one pass for value and
    Jacobian; both must equal the separate evaluations and finite differences."""
    law = make_law(form, 3)
    rng = np.random.default_rng(4)
    G, n = 5, 30
    x = rng.normal(size=(G, n, 3))
    th = np.tile(law.starts(x[:1], np.full((1, n), -2.0), np.ones((1, n)))[0, 4], (G, 1))
    th = th + 0.1 * rng.standard_normal(th.shape)
    yv, J = law.y_jac(th, x)
    np.testing.assert_allclose(yv, law.y(th, x), rtol=0, atol=1e-12)
    h = 1e-6
    for k in range(th.shape[1]):
        tp, tm = th.copy(), th.copy()
        tp[:, k] += h
        tm[:, k] -= h
        np.testing.assert_allclose(J[..., k], (law.y(tp, x) - law.y(tm, x)) / (2 * h), rtol=1e-5, atol=1e-7)
