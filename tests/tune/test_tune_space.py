"""Bad input fails before any trial runs, with a message that names the field and what is allowed."""

from __future__ import annotations

import subprocess

import pytest
from omegaconf import OmegaConf

import rsscale.tune.__main__ as tune_main
from rsscale.config import compose
from rsscale.layout import StudyLayout
from rsscale.tune.space import SearchSpaceError, parse_space, trial_cell
from tests.tune.tune_helpers import REPO, env, tune_cmd

LR = {"recipe.lr_base": {"type": "float", "low": 0.1, "high": 1.0, "log": True}}


def _cfg(search: dict | None, *overrides: str):
    cfg = compose(["+search=lr", "data=synthetic", *overrides], config_name="tune")
    OmegaConf.set_struct(cfg, False)
    if search is not None:
        cfg.search = OmegaConf.create(search)
    return cfg


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "params is empty"),
        ({"recipe.lr_base": {"type": "float", "low": 1.0, "high": 0.1}}, "low=1.0 > high=0.1"),
        (
            {"recipe.weight_decay": {"type": "float", "low": 0.0, "high": 1e-3, "log": True}},
            "log range must be > 0",
        ),
        (
            {"recipe.lr_bse": {"type": "float", "low": 0.1, "high": 1.0}},
            "'recipe.lr_bse' is not a config field",
        ),
        ({"optimizer.lr": {"type": "float", "low": 0.1, "high": 1.0}}, "is not a cell field"),
        ({"recipe.ema_decay": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
        ({"recipe.epochs": {"type": "int", "low": 1.5, "high": 3}}, "integer low/high"),
        ({"recipe.lr_base": {"type": "uniform", "low": 0.1, "high": 1.0}}, "allowed float, int, categorical"),
        (
            {"recipe.label_smoothing": {"type": "float", "low": 0.0, "high": 1.5}},
            "recipe.label_smoothing must be < 1",
        ),
    ],
)
def test_bad_search_space_is_rejected_before_anything_is_written(tmp_path, params, message):
    cfg = _cfg({"name": "bad", "params": params})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        tune_main.prepare(cfg, tmp_path / "study")
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["tune.n_trials=0"], "tune.n_trials must be an integer >= 1"),
        (["tune.workers=0"], "tune.workers must be an integer >= 1"),
        (["data.minival_fraction=0"], "data.minival_fraction=0: the objective is minival top-1"),
        (["tune.sampler=cmaes"], "tune.sampler='cmaes': allowed tpe, random"),
        (["tune.pruner=percentile"], "tune.pruner='percentile': allowed median, hyperband, asha, none"),
    ],
)
def test_bad_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tune_main.prepare(_cfg(None, *overrides), tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_no_search_space_names_the_option():
    with pytest.raises(SearchSpaceError, match=r"\+search=NAME"):
        parse_space(None)


def test_the_cli_exits_2_with_the_message_and_runs_no_trial(tmp_path):
    d = tmp_path / "study"
    proc = subprocess.run(
        tune_cmd(d, "tune.n_trials=0"), cwd=REPO, env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "rsscale.tune: error: tune.n_trials must be an integer >= 1, got 0" in proc.stderr
    assert not StudyLayout(d).journal.exists() and not StudyLayout(d).cells.exists()


def test_trial_cell_applies_values_and_re_resolves_links():
    cfg = _cfg(None)
    from rsscale.config import CELL_GROUPS
    from rsscale.launch.grid import config_links

    base_cfg = OmegaConf.masked_copy(cfg, list(CELL_GROUPS))
    base, links = OmegaConf.to_container(base_cfg, resolve=False), config_links(base_cfg)
    cell = trial_cell(
        base,
        links,
        {"data.train_res": 24},
        {"recipe.dropout": 0.3, "recipe.randaugment_magnitude": 10, "recipe.lr_base": 0.2},
    )
    assert cell["model"]["dropout"] == 0.3  # model.dropout links to recipe.dropout
    assert cell["data"]["randaugment_magnitude"] == 10
    assert cell["data"]["eval_res"] == 24  # eval_res follows train_res
    assert cell["recipe"]["lr_base"] == 0.2


def test_shipped_search_spaces_parse_and_validate(tmp_path):
    for name in ("lr", "recipe"):
        cfg = compose([f"+search={name}", "data=synthetic"], config_name="tune")
        meta = tune_main.prepare(cfg, tmp_path / name)
        assert meta["search"]["name"] == name and meta["study_name"] == name


def test_a_study_directory_refuses_another_sampler_but_takes_a_new_budget(tmp_path):
    d = tmp_path / "study"
    tune_main.prepare(_cfg(None), d)
    assert tune_main.prepare(_cfg(None, "tune.n_trials=30", "tune.workers=4"), d)["tune"]["n_trials"] == 30
    with pytest.raises(ValueError, match="another search space, base config, sampler or pruner"):
        tune_main.prepare(_cfg(None, "tune.sampler=random"), d)
