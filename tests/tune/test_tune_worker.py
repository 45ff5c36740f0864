"""A worker in-process: trials read minival only, pruning keeps the record, val only for the best."""

from __future__ import annotations

import json

import optuna
import pytest
from omegaconf import OmegaConf

import rsscale.data.synthetic as syn
import rsscale.tune.__main__ as tune_main
from rsscale.config import compose
from rsscale.layout import StudyLayout
from rsscale.tune.results import finalize
from rsscale.tune.worker import TuneWorker, load_study
from tests.tune.tune_helpers import FAST

pytestmark = pytest.mark.slow


def test_trials_never_read_val_pruned_trials_keep_records_and_only_the_best_sees_val(tmp_path, monkeypatch):
    splits: list[str] = []
    real = syn.make_split

    def spy(split, *a, **k):
        splits.append(split)
        return real(split, *a, **k)

    monkeypatch.setattr(syn, "make_split", spy)
    d = tmp_path / "study"
    over = [o for o in FAST if not o.startswith("tune.")]
    cfg = compose(
        [
            "+search=lr",
            *over,
            "tune.n_trials=2",
            "tune.n_startup_trials=1",
            "tune.n_warmup_epochs=0",
            "data.minival_fraction=0.2",
        ],
        config_name="tune",
    )
    OmegaConf.set_struct(cfg, False)
    cfg.search.params = {"recipe.lr_base": {"type": "float", "low": 1.0e-5, "high": 1.0, "log": True}}
    meta = tune_main.prepare(cfg, d)
    study = tune_main.create(meta, d)
    study.enqueue_trial({"recipe.lr_base": 0.4})  # learns
    study.enqueue_trial({"recipe.lr_base": 1.0e-5})  # does not: below the median after epoch 1
    TuneWorker(str(d), 0)()
    assert splits and set(splits) == {"train"}, splits  # no trial built the val split

    study, meta = load_study(d)
    pinned = study.user_attrs["rsscale"]  # recorded with the study itself
    assert pinned["sampler"]["name"] == "tpe" and pinned["pruner"]["name"] == "median"
    assert pinned["optuna"] == optuna.__version__ and pinned["versions"]["torch"] and "git_commit" in pinned
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    pruned = json.loads(StudyLayout(d).cell("trial-0001").record.read_text())
    assert pruned["status"] == "pruned" and len(pruned["history"]) == 1  # stopped at the epoch boundary
    assert "median pruner at epoch 1" in pruned["error"]
    done = json.loads(StudyLayout(d).cell("trial-0000").record.read_text())
    assert done["final"]["val_top1"] is None and done["final"]["minival_top1"] == study.best_value

    best = finalize(study, meta, d)
    assert "val" in splits  # only now, for the best trial
    assert best["trial"] == 0 and best["minival_top1"] == study.best_value
    assert 0.0 <= best["val_top1"] <= 1.0 and best["params"] == {"recipe.lr_base": 0.4}
    assert best["sampler"]["class"] == "TPESampler" and best["pruner"]["class"] == "MedianPruner"
    assert best["versions"]["optuna"] == optuna.__version__ and "git_commit" in best
    on_disk = json.loads(StudyLayout(d).best.read_text())
    assert on_disk["val_top1"] == best["val_top1"]
    assert json.loads(StudyLayout(d).cell("trial-0000").record.read_text())["final"]["val_top1"] is not None
    assert json.loads(StudyLayout(d).cell("trial-0001").record.read_text())["final"].get("val_top1") is None
    for name in ("history", "pruning"):
        for ext in ("png", "svg"):
            assert (StudyLayout(d).report / f"{name}.{ext}").stat().st_size > 1000
    # the exported preset is a full recipe a sweep picks with one override
    sweep_cfg = compose([f"hydra.searchpath=[file://{d}]", "recipe=tuned"])
    assert sweep_cfg.recipe.lr_base == 0.4 and sweep_cfg.recipe.epochs == 3
    assert sweep_cfg.recipe.batch_size == 64
