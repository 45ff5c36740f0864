"""Fixtures of the training-core tests (helpers live in train_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import RESUME, tiny_cell


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[Path, dict]:
    """The uninterrupted RESUME run, trained in this process: (run_dir, record)."""
    from rsscale.train.loop import train

    run_dir = tmp_path_factory.mktemp("reference") / "run"
    record = train(tiny_cell(base=RESUME), run_dir)
    assert record["status"] == "completed"
    return run_dir, record
