"""Bad input fails before any training starts, with a ValueError that names the field."""

from __future__ import annotations

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from train_helpers import TINY, tiny_cell

from rsscale.config import cell_config, cell_hash, compose, validate_cell
from rsscale.train.loop import train


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["data=fashion_mnist", "data.root=/nonexistent"], "data.root"),
        (["data.train_res=8"], "data.train_res"),
        (["data.train_res=31.5"], "data.train_res"),
        (["data.train_res=abc"], "data.train_res"),
        (["runtime.tasks=3", "recipe.batch_size=256"], "recipe.batch_size"),
        (["recipe.grad_accum_steps=3", "recipe.batch_size=256"], "recipe.batch_size"),
        (["recipe.lr_schedule=linear"], "recipe.lr_schedule"),
        (["recipe.epochs=0"], "recipe.epochs"),
        (["runtime.precision=fp16"], "runtime.precision"),
        (["logger.mode=online-ish"], "logger.mode"),
        (["model.width=0"], "model.width"),
        (["+recipe.lr=0.1"], "recipe.lr"),  # Hydra accepts an appended key; validation does not
        (["+runtime.nope=1"], "runtime.nope"),
    ],
)
def test_bad_config_raises_before_training(tmp_path, overrides, field):
    base = TINY
    if overrides[0].startswith("data="):  # another dataset: drop the synthetic data overrides
        base = [o for o in TINY if not o.startswith("data")]
    cell = tiny_cell(*overrides, base=base)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate_cell(cell)
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        train(cell, run_dir)
    assert not run_dir.exists()  # nothing ran, nothing written


def test_unknown_preset_names_the_options():
    with pytest.raises(HydraException) as e:
        compose(["recipe=nope"])
    msg = str(e.value)
    assert "recipe/nope" in msg
    for option in ("fast", "rs_paper", "short_regime"):
        assert option in msg


def test_unknown_field_raises():
    with pytest.raises((HydraException, OmegaConfBaseException), match="recipe.nope"):
        compose(["recipe.nope=1"])


def test_hash_ignores_speed_knobs_but_not_results():
    base = cell_hash(tiny_cell())
    assert cell_hash(tiny_cell("runtime.threads=2", "runtime.checkpoint_every_steps=5")) == base
    assert cell_hash(tiny_cell("logger.mode=offline", "runtime.tasks=2")) == base
    assert cell_hash(tiny_cell("recipe.lr_base=0.3")) != base
    assert cell_hash(tiny_cell("runtime.seed=1")) != base
    assert cell_hash(cell_config(compose(TINY))) == base  # deterministic
