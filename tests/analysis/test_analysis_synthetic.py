"""The results-table generator (rsscale.analysis.synthetic): failures, unbalanced grids, truths."""

from __future__ import annotations

import numpy as np
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analysis.load import normalize

GRID = dict(depths=(26, 50, 101, 200), widths=(0.25, 0.5, 1.0, 2.0), resolutions=(128, 224), epochs=(10, 350))


def test_failed_cells_and_unbalanced_grid():
    full = S.make_table(**GRID, seed=3)
    t = S.make_table(**GRID, seed=3, fail_frac=0.2, drop_frac=0.25, extra_rep_frac=0.3)
    df = normalize(t)
    failed = t["status"] == "failed"
    assert 0 < failed.sum() < len(t) and t.loc[failed, "top1"].isna().all()
    assert (~df.loc[failed.to_numpy(), "usable"]).all()
    cells = t.groupby(["depth", "width", "resolution", "epochs"]).size()
    assert len(cells) < len(full)  # some cells missing
    assert cells.max() == 2 and (cells == 1).any()  # some run twice: unbalanced
    assert set(t.loc[t.duplicated(["depth", "width", "resolution", "epochs"]), "seed"]) == {1}


@pytest.mark.parametrize("kw", [{"fail_frac": 1.0}, {"drop_frac": -0.1}, {"noise": -1}])
def test_bad_generator_settings_are_rejected(kw):
    with pytest.raises(ValueError):
        S.make_table(**GRID, **kw)


def test_true_answers_match_the_laws():
    laws = S.paper_like_laws()  # width wins at 10 epochs, depth at 350
    tr = S.true_answers(laws, **GRID)
    assert tr["by_epochs"][10.0]["dvw"] > 0 > tr["by_epochs"][350.0]["dvw"]
    assert tr["by_epochs"][350.0]["path_exponents"] == {"depth": 0.8, "width": 0.25, "resolution": 0.3}
    assert tr["resolution_exponent"] == pytest.approx(
        np.mean([law.resolution_exponent() for law in laws.values()])
    )
    # the powered law is a monotone transform of the additive sum: same optimum, no path exponent
    p = S.PoweredLaw(alpha=0.6, beta=0.8, gamma=1.2, rho=0.6)
    assert p.resolution_exponent() == pytest.approx(
        S.AdditiveLaw(alpha=0.6, beta=0.8, gamma=1.2).resolution_exponent()
    )
    assert p.path_exponents() is None


def test_true_dvw_is_the_analysis_statistic_on_a_noiseless_table():
    """With no noise and a law the path fits contain, the analysis's estimate is the truth."""
    from rsscale.analysis.recommend import Settings, analyze_dataset

    law = S.AdditiveLaw(alpha=0.6, beta=0.5)
    grid = dict(depths=(26, 38, 50, 75, 101, 152, 200), widths=(0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0))
    t = S.make_table(**grid, resolutions=(128,), epochs=(100,), laws=law, noise=1e-4, time_noise=0)
    an = analyze_dataset(normalize(t), Settings(n_boot=20))
    truth = S.true_dvw(law, grid["depths"], grid["widths"], (128,))
    assert an.depth_vs_width["100"]["mean_log_error_diff"] == pytest.approx(truth, abs=2e-3)
