import numpy as np
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import (
    EFFICIENTNET_EXPONENT,
    Settings,
    analyze_dataset,
    efficientnet_table_exponent,
)

FAST = Settings(n_boot=400)


def test_depth_wins_long_width_wins_short(paper_table):
    an = analyze_dataset(normalize(paper_table(seed=1)), FAST, "fm")
    dvw = an.depth_vs_width
    assert dvw["10"]["winner"] == "width" and dvw["10"]["confidence"] >= 0.9
    assert dvw["350"]["winner"] == "depth" and dvw["350"]["confidence"] >= 0.9
    assert dvw["350"]["mean_log_error_diff"] < 0 < dvw["10"]["mean_log_error_diff"]
    for r in ("128", "224"):
        assert dvw["350"]["by_resolution"][r]["winner"] == "depth"
        assert dvw["350"]["by_resolution"][r]["depth_wins_over"]
        assert dvw["10"]["by_resolution"][r]["width_wins_over"]
    assert dvw["350"]["time"]["winner"] in ("depth", "width", "inconclusive")
    assert dvw["350"]["compute_range"][0] < dvw["350"]["compute_range"][1]


def test_swapped_law_swaps_the_answer(paper_table):
    laws = S.paper_like_laws()
    swapped = {10.0: laws[350.0], 350.0: laws[10.0]}
    an = analyze_dataset(normalize(paper_table(seed=2, laws=swapped)), FAST)
    assert an.depth_vs_width["10"]["winner"] == "depth"
    assert an.depth_vs_width["350"]["winner"] == "width"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_difference_is_never_a_winner(paper_table, seed):
    null = S.AdditiveLaw(alpha=0.3, beta=0.6)  # alpha = beta / 2: equal returns along both paths
    an = analyze_dataset(normalize(paper_table(seed=seed, laws=null, epochs=(100,))), FAST)
    v = an.depth_vs_width["100"]
    assert v["winner"] in ("equivalent", "inconclusive")
    assert v["winner"] == "equivalent" or "underpowered" in v["reason"]


def test_no_overlap_or_too_few_points_is_inconclusive(paper_table):
    t = paper_table(depths=(26, 50), widths=(0.25, 0.5))
    an = analyze_dataset(normalize(t), FAST)
    v = an.depth_vs_width["10"]
    assert v["winner"] == "inconclusive" and v["confidence"] is None
    assert "fewer than" in v["by_resolution"]["128"]["reason"]


def _res_table(gamma, seed=1):
    """Wide resolution axis (16-1024 px, 13 values) so that the optimum stays inside the grid."""
    law = S.AdditiveLaw(e_inf=0.04, alpha=0.8, beta=0.5, gamma=gamma, r0=16)
    res = tuple(int(v) for v in np.geomspace(16, 1024, 13))
    t = S.make_table(
        depths=(26, 50, 101, 200, 400),
        widths=(0.5, 0.7, 1, 1.4, 2),
        resolutions=res,
        epochs=(100,),
        laws=law,
        seed=seed,
    )
    return normalize(t), law.resolution_exponent()


def test_resolution_verdict_flips_with_the_law():
    df, k_slow = _res_table(gamma=1.5)
    slow = analyze_dataset(df, FAST).resolution
    df, k_fast = _res_table(gamma=0.2)
    fast = analyze_dataset(df, FAST).resolution
    assert k_slow < 0.11 and k_fast > 0.3
    assert slow["verdict"] == "slower" and slow["ci"][1] < EFFICIENTNET_EXPONENT
    assert fast["verdict"] == "not_slower" and fast["ci"][0] > EFFICIENTNET_EXPONENT
    assert slow["ci"][0] <= k_slow + 0.05 and fast["ci"][0] <= k_fast <= fast["ci"][1] + 0.05
    for r in (slow, fast):
        assert r["confidence"] >= 0.9 and r["efficientnet_exponent"] == pytest.approx(0.2016, abs=1e-4)
        assert r["efficientnet_table_exponent"] == pytest.approx(efficientnet_table_exponent())
        assert r["frontier"]["n_frontier_cells"] >= 3  # the diagnostic is reported too
        assert r["by_epochs"]["100"]["axes"] == ["depth", "width", "resolution"]


def test_resolution_near_the_rule_is_equivalent_not_a_side():
    law = S.AdditiveLaw(e_inf=0.04, alpha=0.8, beta=0.5, gamma=0.6, r0=16)  # k = 0.194
    res = tuple(int(v) for v in np.geomspace(16, 1024, 13))
    t = S.make_table(
        depths=(26, 50, 101, 200, 400),
        widths=(0.5, 0.7, 1, 1.4, 2),
        resolutions=res,
        epochs=(100,),
        laws=law,
        seed=1,
    )
    r = analyze_dataset(normalize(t), FAST).resolution
    assert r["verdict"] == "equivalent" and r["confidence"] >= 0.9
    assert r["power"]["equivalence_margin"] == 0.05 and r["power"]["se"] > 0
    strict = analyze_dataset(normalize(t), Settings(n_boot=400, resolution_margin=0.002)).resolution
    assert strict["verdict"] == "inconclusive" and "both must reach" in strict["reason"]


def test_grid_without_resolution_axis_is_inconclusive(paper_table):
    an = analyze_dataset(normalize(paper_table(resolutions=(32,))), FAST)
    r = an.resolution
    assert r["verdict"] == "inconclusive" and r["exponent"] is None
    assert "resolution does not vary" in r["reason"]
    # and depth vs width is still answered
    assert an.depth_vs_width["350"]["winner"] == "depth"


def test_fits_table_has_params_with_cis(paper_table):
    an = analyze_dataset(normalize(paper_table(depths=(26, 50, 101, 152, 200, 300))), FAST)
    ft = an.fits_table()
    assert {
        "strategy",
        "compute",
        "epochs",
        "law",
        "c",
        "c_lo",
        "c_hi",
        "converged",
        "optimizer_message",
    } <= set(ft.columns)
    assert set(ft["strategy"]) == {"depth", "width", "resolution"}
    assert set(ft["compute"]) == {"flops", "train_step_s"}
    sat = ft[ft["law"] == "saturating"]
    assert len(sat) and (sat["c_lo"] <= sat["c"]).all() and (sat["c"] <= sat["c_hi"]).all()
    assert ft["converged"].all()
    # the 2-point resolution path falls back to the log-linear form, with a note
    assert (ft[ft["strategy"] == "resolution"]["law"] == "powerlaw").all()
    assert ft[ft["strategy"] == "resolution"]["notes"].str.contains("powerlaw").all()
