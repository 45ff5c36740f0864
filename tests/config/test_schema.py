"""The typed schema: each default once (in the dataclasses), presets that only override, imports one way."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.ops import SqueezeExcitation, StochasticDepth

from rsscale.config import (
    CONF_DIR,
    REPO_ROOT,
    SCHEMAS,
    RuntimeConfig,
    cell_config,
    compose,
    typed_cell,
    validate_cell,
)
from rsscale.config_schema import OMIT, cell_fields, defaults
from rsscale.data import DATASETS, DataConfig, validate_data_cfg
from rsscale.models import ResNetRS, ResNetRSConfig, build_model, from_model_cfg, resnet_rs

GROUP_SCHEMAS = {"model": ResNetRSConfig, **SCHEMAS}


def _presets(group):
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        yield path, OmegaConf.to_container(OmegaConf.load(path))


@pytest.mark.parametrize("group", ["model", "data", "recipe", "runtime", "logger"])
def test_presets_inherit_the_schema_and_set_only_what_differs(group):
    for path, preset in _presets(group):
        base = preset.pop("defaults")
        assert base[0] in (f"/schema/{group}@_here_", f"/schema/{group}/{path.stem}@_here_") or (
            group == "model" and base[0] == "resnet_rs"
        ), path
        cls = DATASETS[path.stem].schema if group == "data" else GROUP_SCHEMAS[group]
        own = defaults(cls)
        assert set(preset) <= set(own), f"{path}: fields outside {cls.__name__}"
        for key, value in preset.items():  # a value equal to the schema default would be a second copy
            assert value != own[key], f"{path}: {key}={value!r} repeats {cls.__name__}'s default"


def test_every_dataset_has_a_preset_and_composes_its_schema_fields():
    for name, spec in DATASETS.items():
        overrides = [f"data={name}"] + (["data.root=/datasets/x"] if name == "imagenet" else [])
        data = cell_config(compose(overrides))["data"]
        common = {f.name for f in dataclasses.fields(DataConfig) if f.metadata.get("preset") != OMIT}
        assert set(data) == common | set(spec.preset_fields), name
        assert data["name"] == name and data["eval_res"] == data["train_res"]
        if name != "imagenet":  # validation fills in the rest (ImageNet's would need a tree on disk)
            assert set(validate_data_cfg(data)) == set(cell_fields(spec.schema))


def test_group_fields_are_the_schema_fields():
    cell = cell_config(compose([]))
    assert set(cell["model"]) == set(cell_fields(ResNetRSConfig))
    for group, cls in SCHEMAS.items():
        assert set(cell[group]) == set(cell_fields(cls)), group
    validate_cell(cell)


def test_model_takes_its_config_whole():
    cfg = ResNetRSConfig(depth=26, width=0.25, stem="small", num_classes=10, in_chans=1)
    with torch.device("meta"):
        m = ResNetRS(cfg)
        same = build_model({"depth": 26, "width": 0.25, "stem": "small"}, num_classes=10, in_chans=1)
        also = resnet_rs(26, 0.25, num_classes=10, in_chans=1, stem="small")
    assert m.cfg == same.cfg == also.cfg == cfg
    assert from_model_cfg({"blocks": [1, 2, 1, 1]}).blocks == (1, 2, 1, 1)
    with pytest.raises(ValueError, match=r"unknown model config key\(s\) \['num_classes'\]"):
        from_model_cfg({"num_classes": 5})  # classes and channels come from the data, not the group
    with pytest.raises(ValueError, match=r"model\.depth=37"):
        ResNetRSConfig(depth=37)


def test_blocks_use_torchvision_layers():
    m = resnet_rs(blocks=[1, 1, 1, 1], width=0.25, num_classes=10, stem="small", drop_path_rate=0.2)
    b = m.layer4[0]
    assert isinstance(b.se, SqueezeExcitation) and isinstance(b.drop_path, StochasticDepth)
    assert b.drop_path.mode == "row" and b.drop_path.drop_prob == pytest.approx(0.2)


def test_imports_point_one_way():
    """data and models import neither the config layer nor train; the config layer does not import train."""
    code = (
        "import sys, importlib\n"
        "for mod, banned in [('rsscale.data', ('rsscale.config', 'rsscale.train', 'rsscale.launch')),\n"
        "                    ('rsscale.models', ('rsscale.config', 'rsscale.train', 'rsscale.data')),\n"
        "                    ('rsscale.config', ('rsscale.train', 'rsscale.launch', 'rsscale.tune'))]:\n"
        "    for m in [k for k in sys.modules if k.startswith('rsscale')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(mod)\n"
        "    bad = sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in banned))\n"
        "    assert not bad, (mod, bad)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_typed_cell_reads_the_plain_cell_with_the_schema():
    cell = cell_config(compose(["recipe=rs_paper", "model.depth=50", "data.train_res=160"]))
    typed = typed_cell(cell)
    assert typed.model == from_model_cfg(cell["model"]) and typed.model.dropout == 0.25  # Table 8
    assert typed.recipe.ema_decay == 0.9999 and typed.recipe.name == "rs_paper"
    assert typed.data.train_res == typed.data.eval_res == 160 and typed.data.max_unreadable_fraction == 0.001
    del cell["runtime"]["sync_bn"]  # a field the cell lacks reads as the schema's default
    assert typed_cell(cell).runtime.sync_bn is RuntimeConfig.sync_bn is True
    with pytest.raises(ValueError, match=r"runtime\.nope is not a known field"):
        typed_cell({**cell, "runtime": {**cell["runtime"], "nope": 1}})
