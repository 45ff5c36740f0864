"""Regimes (epochs, training-set size) and the cross-regime depth-vs-width verdict, on tables
generated from known laws: a regime-dependent winner, the same winner, and too little data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rsscale.analysis.columns import record_to_row
from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import Settings, analyze_dataset
from rsscale.analysis.regimes import cross_regime_verdict, regime_keys
from rsscale.analysis.report import write_report
from tests.analysis import synthetic_laws as S

FAST = Settings(n_boot=300)
LAWS = S.paper_like_laws()
WIDTH_WINS, DEPTH_WINS = LAWS[10.0], LAWS[350.0]
SHORT, LONG = "8ep-4000img", "8ep-500img"


def regime(law, train_size, gap, seed, noise=0.02, depths=(26, 50, 101, 200, 300)):
    """One regime at 8 epochs (both regimes share the epoch count: only the data tell them apart)."""
    t = S.make_table(
        depths=depths,
        widths=(0.25, 0.5, 1.0, 1.5, 2.0),
        resolutions=(128,),
        epochs=(8,),
        laws=law,
        noise=noise,
        seed=seed,
        dataset="fashion_mnist",
    )
    t["train_size"] = train_size
    t["generalization_gap"] = gap
    t["cell_id"] = [f"n{train_size}-{i}" for i in range(len(t))]
    return t


def two_regimes(short_law, long_law, seed=0, **long_kw):
    return normalize(
        pd.concat(
            [regime(short_law, 4000, 0.01, seed), regime(long_law, 500, 0.2, seed + 100, **long_kw)],
            ignore_index=True,
        )
    )


def test_regimes_with_the_same_epoch_count_stay_apart():
    t = two_regimes(WIDTH_WINS, DEPTH_WINS)
    assert sorted(set(regime_keys(t))) == [SHORT, LONG]
    an = analyze_dataset(t, FAST, "fm")
    assert list(an.depth_vs_width) == [LONG, SHORT]  # ordered by (epochs, training images)
    assert an.regimes[LONG]["train_size"] == 500 and an.regimes[SHORT]["epochs"] == 8.0
    for strategy in ("depth", "width"):
        ids = {g: set(an.find(strategy, "flops", 8.0, 128.0, regime=g).cell_ids) for g in (SHORT, LONG)}
        assert len(ids[SHORT]) == len(ids[LONG]) == 5 and not ids[SHORT] & ids[LONG]
    # 5, not 10: the regimes' paths never merge
    assert an.depth_vs_width[LONG]["by_resolution"]["128"]["n_depth"] == 5


def test_a_single_training_set_size_keeps_plain_epoch_keys():
    t = normalize(pd.concat([regime(WIDTH_WINS, 4000, 0.0, 0), regime(DEPTH_WINS, 4000, 0.0, 1)]))
    assert set(regime_keys(t)) == {"8"}


def test_regime_dependent_winner_agrees_with_the_paper():
    an = analyze_dataset(two_regimes(WIDTH_WINS, DEPTH_WINS), FAST, "fm")
    assert an.depth_vs_width[SHORT]["winner"] == "width" and an.depth_vs_width[LONG]["winner"] == "depth"
    v = an.cross_regime
    assert v["verdict"] == "depends on regime" and v["confidence"] >= 0.8
    assert v["wins"] == {"8 epochs x 4000 images": "width", "8 epochs x 500 images": "depth"}
    assert v["paper"].startswith("agrees with the paper")
    assert v["regimes"][LONG]["generalization_gap"] == pytest.approx(0.2)


def test_the_opposite_dependence_contradicts_the_paper_plainly():
    v = analyze_dataset(two_regimes(DEPTH_WINS, WIDTH_WINS), FAST, "fm").cross_regime
    assert v["verdict"] == "depends on regime"
    assert v["paper"].startswith("contradicts the paper") and "depth at 8 epochs x 4000 images" in v["paper"]


def test_same_winner_in_both_regimes():
    v = analyze_dataset(two_regimes(DEPTH_WINS, DEPTH_WINS), FAST, "fm").cross_regime
    assert (v["verdict"], v["winner"]) == ("same winner", "depth") and v["confidence"] >= 0.8
    # the paper expects width where it does not over-fit
    assert v["paper"].startswith("contradicts the paper")


def test_too_little_data_is_inconclusive_with_what_would_resolve_it():
    # the long regime: a small, noisy study of a real but modest depth advantage
    t = two_regimes(WIDTH_WINS, DEPTH_WINS, noise=0.5, depths=(26, 50, 101))
    v = analyze_dataset(t, FAST, "fm").cross_regime
    assert v["verdict"] == "inconclusive" and v["confidence"] is None and v["paper"] is None
    assert "8 epochs x 500 images" in v["reason"]
    power = v["to_resolve"][LONG]
    assert power["minimal_detectable_difference"] > 0 and power["to_resolve"]


def test_one_regime_is_not_a_cross_regime_answer():
    v = cross_regime_verdict({"4": {"winner": "depth", "confidence": 1.0}}, {"4": {"epochs": 4.0}})
    assert v["verdict"] == "inconclusive" and "one training regime" in v["reason"]


def test_different_decided_winners_stay_regime_dependent_beside_an_undecided_regime():
    dvw = {
        "a": {"winner": "depth", "confidence": 0.95},
        "b": {"winner": "inconclusive", "confidence": None, "power": {"se": 0.1}},
        "c": {"winner": "width", "confidence": 0.9},
    }
    info = {k: {"epochs": e, "train_size": 100} for k, e in (("a", 1.0), ("b", 2.0), ("c", 3.0))}
    v = cross_regime_verdict(dvw, info)
    assert v["verdict"] == "depends on regime" and v["confidence"] == pytest.approx(0.95 * 0.9)
    assert v["to_resolve"] == {"b": {"se": 0.1}}


def test_record_rows_carry_the_regime_and_the_gap():
    rec = {
        "schema_version": 1,
        "status": "completed",
        "config": {"data": {"name": "fashion_mnist", "train_subset": 4000}, "recipe": {"epochs": 4}},
        "cost": {"train_images": 512},
        "final": {"train_top1": 0.9, "generalization_gap": 0.1},
    }
    row = record_to_row(rec)
    assert (row["train_size"], row["train_top1"], row["generalization_gap"]) == (512, 0.9, 0.1)
    del rec["cost"]["train_images"]  # a record from before cost.train_images: the configured subset
    assert record_to_row(rec)["train_size"] == 4000


def test_report_and_json_give_each_regimes_gap_and_the_cross_regime_verdict(tmp_path):
    rec = write_report(two_regimes(WIDTH_WINS, DEPTH_WINS), tmp_path, FAST, figures=False)
    disk = json.loads((tmp_path / "recommendations.json").read_text())
    assert disk["cross_regime"]["verdict"] == rec["cross_regime"]["verdict"] == "depends on regime"
    assert disk["regimes"][LONG]["generalization_gap"] == pytest.approx(0.2)
    md = (tmp_path / "recommendations.md").read_text()
    assert "### Training regimes and the cross-regime verdict" in md
    assert f"| {LONG} | 8 | 500 | 25 | 0.200" in md
    cross = "**Across regimes: depends on regime: depth at 8 epochs x 500 images; width at 8 epochs x 4000"
    assert cross in md
    assert "agrees with the paper" in md


def test_the_figure_gives_each_regime_its_gap_and_the_cross_regime_verdict(tmp_path, monkeypatch):
    import matplotlib

    from rsscale.analysis import plots

    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text stays text in the SVG
    t = two_regimes(WIDTH_WINS, DEPTH_WINS)
    an = analyze_dataset(t, FAST, "fm")
    svg = next(f for f in plots.depth_vs_width(an, "flops", tmp_path) if f.endswith(".svg"))
    text = Path(svg).read_text()
    assert "8 epochs x 500 images (gap +0.200): depth" in text
    assert "across regimes: depends on regime: depth at 8 epochs x 500 images" in text
    curves = plots.scaling_curves(an, t, "flops", LONG, tmp_path)
    assert any(f.endswith("scaling_flops_e8_n500.svg") for f in curves)
