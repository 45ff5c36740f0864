"""A run reads its typed config: the cell is validated once, its data files are checked once."""

from __future__ import annotations

import dataclasses

from train_helpers import tiny_cell

from rsscale.data.registry import DATASETS
from rsscale.train.loop import train


def test_a_run_checks_its_data_files_once(tmp_path, monkeypatch):
    spec, calls = DATASETS["synthetic"], []

    def check_files(cfg):
        calls.append(cfg.name)
        spec.check_files(cfg)

    monkeypatch.setitem(DATASETS, "synthetic", dataclasses.replace(spec, check_files=check_files))
    record = train(tiny_cell("recipe.epochs=1", "runtime.max_steps=1"), tmp_path / "run")
    assert record["status"] == "completed", record.get("error")
    assert calls == ["synthetic"]  # typed_cell's check; build_data takes the validated DataConfig
