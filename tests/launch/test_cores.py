"""Idle cores at the tail of a local sweep go to the cells still running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rsscale.launch.cores import core_shares, write_shares
from rsscale.layout import CellLayout, SweepLayout
from tests.launch.sweep_helpers import REPO, sweep


def test_core_shares_split_the_machine_only_when_nothing_waits():
    assert core_shares(["a", "b"], cores=2, base_threads=1, queued=3) == {"a": 1, "b": 1}
    assert core_shares(["a"], cores=2, base_threads=1, queued=0) == {"a": 2}
    assert core_shares(["a", "b"], cores=5, base_threads=1, queued=0) == {"a": 3, "b": 2}
    assert core_shares(["a", "b", "c"], cores=2, base_threads=1, queued=0) == {"a": 1, "b": 1, "c": 1}
    assert core_shares([], cores=2, base_threads=1, queued=0) == {}


def test_thread_follower_sets_torch_threads_in_the_training_thread(tmp_path):
    cell = SweepLayout(tmp_path).cell("c1").dir
    cell.mkdir(parents=True)
    code = f"""
import torch
from rsscale.launch.cores import ThreadFollower, write_shares
torch.set_num_threads(1)
follow = ThreadFollower({str(cell)!r}, every_s=0.0)
follow(1)
before = torch.get_num_threads()
written = {{}}
write_shares({str(tmp_path)!r}, {{"c1": 2}}, written)
follow(2)
print(before, torch.get_num_threads(), written)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    ).stdout.split()
    assert out[:2] == ["1", "2"]
    written: dict[str, int] = {"c1": 2}
    write_shares(tmp_path, {"c1": 2}, written)  # unchanged share: nothing rewritten
    assert written == {"c1": 2}


@pytest.mark.slow
def test_last_running_cell_gets_the_freed_core(tmp_path):
    d = tmp_path / "sw"
    sweep(d, "model.stem=small", grid="tail")
    logs = {c.name: CellLayout(c).train_log.read_text() for c in SweepLayout(d).cells.iterdir()}
    long_log = next(text for name, text in logs.items() if "-e10-" in name)
    short_log = next(text for name, text in logs.items() if "-e1-" in name)
    assert "threads 1 -> 2" in long_log, long_log
    assert "threads" not in short_log


@pytest.mark.slow
def test_pinned_or_deterministic_cells_keep_their_threads(tmp_path):
    """runtime.threads (and deterministic mode) pin the thread count: idle cores never change it, since a
    different thread count changes float sums (the random-kill test's metrics differed once)."""
    d = tmp_path / "sw"
    sweep(d, "model.stem=small", "runtime.threads=1", grid="tail")
    logs = {c.name: CellLayout(c).train_log.read_text() for c in SweepLayout(d).cells.iterdir()}
    assert all("threads 1 -> 2" not in text for text in logs.values()), logs
