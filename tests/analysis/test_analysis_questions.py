"""The questions as pieces: one module per question, iterated by the report, the summary and the
JSON; what would resolve an open answer (rsscale.analysis.questions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsscale import analyze
from rsscale.analysis.load import load_results, normalize
from rsscale.analysis.power import power_summary
from rsscale.analysis.questions import QUESTIONS, Answer, Question, ResolveOption, register, unregister
from rsscale.analysis.recommend import Settings, analyze_dataset
from rsscale.analysis.regimes import cross_regime_verdict
from rsscale.analysis.report import write_report
from tests.analysis.conftest import paper_table


class BestCell:
    """A toy question: which cell has the lowest error? Everything it shows comes from here."""

    name = "toy_best_cell"

    def answer(self, an, df: pd.DataFrame) -> Answer:
        best = df.loc[df["error"].idxmin()]
        nums = {"cell_id": str(best["cell_id"]), "error": float(best["error"]), "n_paths": len(an.paths)}
        return Answer(
            self.name,
            verdict=f"cell {nums['cell_id']}",
            confidence=None,
            numbers=nums,
            summary=[f"toy best cell: {nums['cell_id']} (error {nums['error']:.4f})"],
            markdown=["\n### Toy: the best cell\n", f"The lowest error is cell `{nums['cell_id']}`."],
        )

    def resolve(self, answer: Answer) -> ResolveOption | None:
        return ResolveOption(self.name, "confirmed", 2.0, 1, scope=(answer.numbers["cell_id"],))

    def figures(self, an, df, out_dir: Path, prefix: str = "") -> list[str]:
        return []


@pytest.fixture
def toy():
    q = register(BestCell())
    try:
        yield q
    finally:
        unregister(q.name)
    assert all(x.name != q.name for x in QUESTIONS)


def test_a_question_registered_in_one_place_reaches_report_json_and_summary(toy, tmp_path, capsys):
    t = paper_table(epochs=(10,), resolutions=(128,))
    src = tmp_path / "table.csv"
    t.to_csv(src, index=False)
    out = tmp_path / "report"
    rc = analyze.main([str(src), "--out", str(out), "--n-boot", "40", "--no-figures"])
    assert rc == 0
    loaded = load_results(src)
    best = str(loaded[loaded["usable"]].sort_values("error").iloc[0]["cell_id"])
    md = (out / "recommendations.md").read_text()
    assert "### Toy: the best cell" in md and f"The lowest error is cell `{best}`." in md
    # in the registry's order: after the built-in questions' sections, before the fitted paths
    assert md.index("### Resolution") < md.index("### Toy") < md.index("## Fitted scaling paths")
    rec = json.loads((out / "recommendations.json").read_text())
    assert list(rec["questions"]) == ["depth_vs_width", "cross_regime", "resolution", "toy_best_cell"]
    assert rec["questions"]["toy_best_cell"]["resolve"]["scope"] == [best]
    assert rec["questions"]["toy_best_cell"]["verdict"] == f"cell {best}"
    printed = capsys.readouterr().out
    assert f"  toy best cell: {best} (error " in printed
    assert printed.index("depth vs width") < printed.index("resolution:") < printed.index("toy best cell")


def test_registry_rejects_duplicates_and_objects_without_the_interface(toy):
    with pytest.raises(ValueError, match="already registered"):
        register(BestCell())
    with pytest.raises(TypeError, match="Question interface"):
        register(object())
    assert all(isinstance(q, Question) for q in QUESTIONS)


def test_every_built_in_answer_is_in_the_json_with_its_summary(tmp_path):
    t = paper_table(epochs=(10,))
    rec = write_report(normalize(t), tmp_path, Settings(n_boot=40), figures=False)
    assert list(rec["questions"]) == [q.name for q in QUESTIONS]
    assert rec["questions"]["depth_vs_width"]["summary"][0].startswith("depth vs width, 10 epochs: ")
    assert rec["questions"]["cross_regime"]["summary"] == []  # one regime: nothing to say across
    assert rec["questions"]["resolution"]["summary"][0].startswith("resolution: ")
    # the historical keys are unchanged
    assert {"depth_vs_width", "regimes", "cross_regime", "resolution", "base", "settings"} <= set(rec)


def test_an_underpowered_depth_vs_width_says_what_would_resolve_it():
    # noise 0.3 on one resolution of 5 x 5 cells: too little to tell depth from width
    t = paper_table(epochs=(10,), resolutions=(128,), noise=0.3, seed=3)
    an = analyze_dataset(normalize(t), Settings(n_boot=200), "fm")
    q = next(q for q in QUESTIONS if q.name == "depth_vs_width")
    a = an.answers[q.name]
    opt = q.resolve(a)
    assert a.numbers["10"]["winner"] == "inconclusive"
    assert isinstance(opt, ResolveOption) and opt.data_factor > 1
    assert opt.scope == ("10",) and opt.paths == ("depth@10", "width@10")
    todo = a.numbers["10"]["power"]["to_resolve"][opt.verdict]
    assert opt.data_factor == pytest.approx(todo["data_factor"])
    assert opt.cells_per_path == todo["cells_per_path"] > opt.cells_per_path_now
    assert an.questions[q.name]["resolve"] == opt.as_dict()


def test_a_decided_answer_needs_nothing():
    an = analyze_dataset(normalize(paper_table(seed=1)), Settings(n_boot=200), "fm")
    dvw = next(q for q in QUESTIONS if q.name == "depth_vs_width")
    assert {v["winner"] for v in an.depth_vs_width.values()} == {"depth", "width"}
    assert dvw.resolve(an.answers["depth_vs_width"]) is None
    assert an.questions["cross_regime"]["verdict"] == "depends on regime"
    assert an.questions["cross_regime"]["resolve"] is None


def test_resolve_option_rejects_impossible_factors():
    with pytest.raises(ValueError, match="data_factor"):
        ResolveOption("q", "depth", 0.5, 0)
    with pytest.raises(ValueError, match="more_seeds_per_cell"):
        ResolveOption("q", "depth", 2.0, -1)


def test_an_open_cross_regime_verdict_asks_for_the_undecided_regimes_only():
    rng = np.random.default_rng(0)
    kw = dict(min_effect=0.01, margin=0.05, threshold=0.9, n_cells=5)
    dvw = {
        "10": {
            "winner": "width",
            "confidence": 0.99,
            "power": power_summary(0.2, 0.2 + 0.02 * rng.standard_normal(500), **kw),
        },
        "350": {
            "winner": "inconclusive",
            "confidence": None,
            "power": power_summary(-0.08, -0.08 + 0.06 * rng.standard_normal(500), **kw),
        },
    }
    info = {
        k: {"epochs": float(k), "train_size": None, "n_cells": 50, "generalization_gap": None} for k in dvw
    }
    v = cross_regime_verdict(dvw, info)
    assert v["verdict"] == "inconclusive" and list(v["to_resolve"]) == ["350"]
    q = next(q for q in QUESTIONS if q.name == "cross_regime")
    opt = q.resolve(Answer(q.name, v["verdict"], None, {**v, "depth_vs_width": dvw}))
    best = min(dvw["350"]["power"]["to_resolve"].items(), key=lambda kv: kv[1]["data_factor"])
    assert opt.scope == ("350",) and opt.paths == ("depth@350", "width@350")
    assert opt.verdict == best[0] and opt.data_factor == pytest.approx(best[1]["data_factor"])
    assert opt.data_factor > 1 and opt.cells_per_path > opt.cells_per_path_now == 5
