"""Longest cell first in the local launcher, by the cost model (not FLOPs alone)."""

from __future__ import annotations

import json
import re

import pytest

from rsscale.config import compose
from rsscale.launch.grid import expand
from rsscale.launch.resources import cell_cost, local_cell_seconds, longest_first
from rsscale.layout import CellLayout, SweepLayout
from tests.launch.sweep_helpers import TEST_GRIDS, sweep


def _cell(*overrides: str) -> dict:
    return expand(compose(["model.stem=small", "data.train_res=16", *overrides]))[1][0].config


def test_cost_model_ranks_deep_narrow_above_shallow_wide_of_similar_flops():
    deep = _cell("model.depth=270", "model.width=0.125")
    wide = _cell("model.depth=26", "model.width=0.4375")
    # FLOPs alone would start the shallow wide cell first; measured, the deep one takes ~1.8x longer
    assert cell_cost(deep)["flops_per_image"] < cell_cost(wide)["flops_per_image"]
    assert local_cell_seconds(deep) > 1.5 * local_cell_seconds(wide)
    assert local_cell_seconds(_cell("recipe.epochs=4")) > 3 * local_cell_seconds(_cell("recipe.epochs=1"))


def test_longest_first_is_a_stable_sort_by_cost():
    items = [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    cost = {"a": 1.0, "b": 5.0, "c": 1.0, "d": 3.0}.get
    assert [cid for cid, _ in longest_first(items, cost)] == ["b", "d", "a", "c"]


def test_grid_cases_with_their_own_axes_share_the_base_cell():
    _, cells = expand(compose(["+grid=paths", f"hydra.searchpath=[file://{TEST_GRIDS}]", "data=synthetic"]))
    shapes = [(c.config["model"]["depth"], c.config["model"]["width"]) for c in cells]
    assert shapes == [(26, 0.25), (101, 0.25), (26, 0.5)]  # the base cell once, in grid order


@pytest.mark.slow
def test_local_launcher_starts_the_longest_cell_first(tmp_path):
    d = tmp_path / "sw"
    proc = sweep(d, "cluster.max_parallel=1", "runtime.max_steps=2", "model.stem=small", grid="paths")
    # one cell at a time: the completion order is the start order
    done = re.findall(r"\[\d+/3\] (d\d+-w[\d.]+)-", proc.stdout + proc.stderr)
    assert done == ["d101-w0.25", "d26-w0.5", "d26-w0.25"], proc.stdout + proc.stderr
    starts = {}
    for cell in SweepLayout(d).cells.iterdir():
        first = CellLayout(cell).attempts.read_text().splitlines()[0]
        starts[cell.name.rsplit("-", 3)[0]] = json.loads(first)
    assert starts["d101-w0.25"]["time"] <= starts["d26-w0.5"]["time"] <= starts["d26-w0.25"]["time"]
