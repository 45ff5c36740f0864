"""A budget lowered below the trials already run (issue 25): said, and best.json keeps what ran."""

from __future__ import annotations

import json

import pytest

from rsscale.layout import StudyLayout
from tests.tune.tune_helpers import tune


@pytest.mark.slow
def test_n_trials_lowered_below_the_trials_run_is_said_and_best_json_keeps_them(tmp_path):
    study = tmp_path / "study"
    tune(study, "tune.n_trials=2", "recipe.epochs=1")
    assert json.loads(StudyLayout(study).best.read_text())["n_trials"] == 2
    proc = tune(study, "tune.n_trials=1", "recipe.epochs=1")
    assert "tune.n_trials=1 is below the 2 trials already run" in proc.stdout, proc.stdout
    best = json.loads(StudyLayout(study).best.read_text())
    assert best["n_trials"] == 2 and best["n_trials_setting"] == 1  # was rewritten as 1, without a word
