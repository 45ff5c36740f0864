"""Equivalence versus "not enough data": the verdict, the study's power, what would resolve it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analysis.load import normalize
from rsscale.analysis.power import equivalence_confidence, power_summary
from rsscale.analysis.recommend import Settings, analyze_dataset

FAST = Settings(n_boot=400)
NULL = S.AdditiveLaw(alpha=0.3, beta=0.6)  # alpha = beta / 2: equal returns along both paths


def _null(depths, widths, noise, seed=0, replicates=1):
    t = S.make_table(
        depths=depths,
        widths=widths,
        resolutions=(32,),
        epochs=(10,),
        laws=NULL,
        noise=noise,
        seed=seed,
        replicates=replicates,
    )
    return analyze_dataset(normalize(t), FAST).depth_vs_width["10"]


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_efficiency_dense_and_quiet_is_equivalent(seed):
    v = _null((26, 50, 101, 152, 200, 270, 350, 420), (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8), 0.01, seed)
    assert v["winner"] == "equivalent" and v["confidence"] >= 0.9
    assert v["equivalence_confidence"] == v["confidence"] and v["leader_confidence"] < 0.9
    p = v["power"]
    assert p["smallest_equivalence_margin"] < p["equivalence_margin"] == 0.05
    assert p["to_resolve"]["equivalent"]["data_factor"] == 1.0 and p["nearest"] == "equivalent"


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_efficiency_sparse_and_noisy_is_inconclusive_and_says_what_would_resolve_it(seed):
    v = _null((26, 50, 101, 152, 200, 270), (0.25, 0.35, 0.5, 0.7, 1.0, 1.4), 0.15, seed)
    assert v["winner"] == "inconclusive" and "underpowered" in v["reason"]
    p = v["power"]
    assert p["minimal_detectable_difference"] > p["min_effect"]
    assert p["smallest_equivalence_margin"] > p["equivalence_margin"]
    r = p["to_resolve"][p["nearest"]]
    assert r["data_factor"] > 1 and r["more_seeds_per_cell"] >= 1
    assert r["cells_per_path"] > r["cells_per_path_now"] == 6


def test_the_replication_it_asks_for_resolves_the_null():
    depths, widths = (26, 50, 101, 152, 200, 270), (0.25, 0.35, 0.5, 0.7, 1.0, 1.4)
    v = _null(depths, widths, 0.06, seed=3)
    assert v["winner"] == "inconclusive"
    r = v["power"]["to_resolve"]["equivalent"]
    assert r["more_seeds_per_cell"] >= 1
    more = _null(depths, widths, 0.06, seed=3, replicates=r["more_seeds_per_cell"] + 2)
    assert more["winner"] == "equivalent"


def test_power_summary_formulas_on_a_known_distribution():
    rng = np.random.default_rng(0)
    sb = rng.normal(0.0, 0.05, 20_000)
    p = power_summary(0.0, sb, min_effect=0.01, margin=0.05, threshold=0.9, n_cells=6)
    assert p["se"] == pytest.approx(0.05, rel=0.03)
    assert p["minimal_detectable_difference"] == pytest.approx(0.01 + (1.2816 + 0.8416) * 0.05, rel=0.03)
    # equivalence needs se <= 0.05 / 1.2816: (1.2816 * 0.05 / 0.05)^2 = 1.64x the data, one more seed
    assert list(p["to_resolve"]) == ["equivalent"]
    eq = p["to_resolve"]["equivalent"]
    assert eq["data_factor"] == pytest.approx(1.64, rel=0.05)
    assert eq["more_seeds_per_cell"] == 1 and eq["cells_per_path"] == 10
    assert equivalence_confidence(sb, 0.0, 0.05) == pytest.approx(1 - 0.1587, abs=0.01)
    lead = power_summary(-0.2, sb - 0.2, min_effect=0.01, margin=0.05, threshold=0.9)
    assert lead["nearest"] == "depth" and lead["to_resolve"]["depth"]["data_factor"] == 1.0
    assert math.isnan(power_summary(0.0, np.zeros(1), min_effect=0.01, margin=0.05, threshold=0.9)["se"])
