"""Issue 25: a budget lowered below the trials already run is said and best.json keeps what ran;
a garbage study.json is named, set aside and rebuilt."""

from __future__ import annotations

import json

import pytest

from rsscale.layout import StudyLayout
from tests.tune.tune_helpers import tune


@pytest.mark.slow
def test_n_trials_lowered_below_the_trials_run_is_said_and_garbage_study_json_is_rebuilt(tmp_path):
    study = tmp_path / "study"
    tune(study, "tune.n_trials=2", "recipe.epochs=1")
    assert json.loads(StudyLayout(study).best.read_text())["n_trials"] == 2
    files = StudyLayout(study)
    files.meta.write_bytes(b"\x89\xbe garbage \xff")  # binary garbage in study.json
    proc = tune(study, "tune.n_trials=1", "recipe.epochs=1")
    assert "tune.n_trials=1 is below the 2 trials already run" in proc.stdout, proc.stdout
    assert f"{files.meta} is unreadable" in proc.stderr and "study.json.garbage-1" in proc.stderr, proc.stderr
    assert json.loads(files.meta.read_text())["study_name"] == "study"
    best = json.loads(StudyLayout(study).best.read_text())
    assert best["n_trials"] == 2 and best["n_trials_setting"] == 1  # was rewritten as 1, without a word
