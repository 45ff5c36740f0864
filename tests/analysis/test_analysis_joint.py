"""The resolution exponent under both functional forms of the joint law (rsscale.analysis.joint)."""

from __future__ import annotations

import numpy as np
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analysis.joint import fit_joint, form_weight, make_law
from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import Settings, analyze_dataset

GRID = dict(
    depths=(26, 50, 101, 200, 400),
    widths=(0.5, 0.7, 1, 1.4, 2),
    resolutions=tuple(int(v) for v in np.geomspace(32, 512, 7)),
    epochs=(100,),
)
PRODUCT = S.ProductLaw(a_d=0.25, a_w=0.4, gamma=2.0, a_res=0.3, r0=32)  # k = 0.100
ADDITIVE = S.AdditiveLaw(e_inf=0.04, alpha=0.8, beta=0.5, gamma=1.5, r0=16)  # k = 0.101


def _theta(law, form):
    """The generating law's parameters in the joint law's theta (log axes, resolution last)."""
    if form == "additive":
        return np.array(
            [np.log(law.e_inf), 0, law.alpha, 0, law.beta, 0, law.gamma], float
        )  # amplitudes do not enter k
    return np.array([np.log(law.e_inf), 0, law.a_d, law.a_w, 0, law.gamma], float)


@pytest.mark.parametrize("form,law", [("additive", ADDITIVE), ("product", PRODUCT)])
def test_exponent_formula_matches_the_law(form, law):
    """k from the joint law's parameters and FLOPs ~ d w^2 r^2 is the generating law's own k."""
    g = np.array([[1.0, 2.0, 2.0]])
    k = make_law(form, 3).resolution_exponent(_theta(law, form)[None], g)[0]
    assert k == pytest.approx(law.resolution_exponent(), rel=1e-12)


def test_product_exponent_uses_the_better_axis():
    law = S.ProductLaw(a_d=0.2, a_w=0.9, gamma=1.0)  # width is better per log-FLOP: 0.45 > 0.2
    assert law.resolution_exponent() == pytest.approx(0.45 / 1.9)
    th = _theta(law, "product")[None]
    assert make_law("product", 3).resolution_exponent(th, np.array([[1.0, 2.0, 2.0]]))[0] == pytest.approx(
        0.45 / 1.9
    )


@pytest.mark.parametrize("form,law", [("product", PRODUCT), ("additive", ADDITIVE)])
def test_interval_covers_the_truth_and_the_form_is_found(form, law):
    t = S.make_table(**GRID, laws=law, seed=1)
    truth = S.true_answers(law, GRID["depths"], GRID["widths"], GRID["resolutions"], GRID["epochs"])
    r = analyze_dataset(normalize(t), Settings(n_boot=300)).resolution
    k = truth["resolution_exponent"]
    assert r["ci"][0] <= k <= r["ci"][1], (r["exponent"], r["ci"], k)
    assert r["form"]["favoured"] == form
    fb = r["by_epochs"]["100"]["form"]
    assert fb["favoured"] == form and fb["weights"][form] >= 0.9
    other = "additive" if form == "product" else "product"
    # the other form misses by more than the interval's width: the choice matters; with weight
    # < 0.001 its bootstrap is skipped (it would not supply one resample in 1000)
    assert abs(fb["forms"][other]["exponent"] - k) > r["ci"][1] - r["ci"][0]
    assert fb["forms"][form]["bootstrapped"] and not fb["forms"][other]["bootstrapped"]
    assert fb["forms"][form]["held_out_rmse"] < fb["forms"][other]["held_out_rmse"]


def test_form_weight_and_the_one_axis_case():
    """Held-out losses that do not differ give weight 1/2 each; a clear difference nearly 1."""
    rng = np.random.default_rng(0)
    ra = rng.normal(0, 0.02, 200)
    w, z = form_weight(ra, ra.copy(), 0.03)
    assert w == 0.5 and z == 0.0
    w, z = form_weight(ra, 0.5 * ra, 0.03)  # b fits clearly better
    assert w > 0.99 and z > 3
    # a one-axis model: the forms coincide, only one is fitted
    t = S.make_table(depths=(26,), widths=GRID["widths"], resolutions=GRID["resolutions"], epochs=(100,))
    df = normalize(t)
    U = np.log(df[["width", "resolution"]].to_numpy(float))
    U -= U.mean(0)
    y = np.log(df["error"].to_numpy(float))
    lc = np.log(df["flops"].to_numpy(float))
    jr = fit_joint(U, y, lc, np.ones((4, len(y))), ["width", "resolution"], rng)
    assert jr.favoured == "identical" and set(jr.fits) == {"additive"}


def test_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="unknown joint form"):
        make_law("ces", 3)
