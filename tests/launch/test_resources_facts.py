"""Resources ask the dataset registry for a cell's data: an unknown dataset fails before anything is
submitted (it used to be costed silently as 1,000,000 images of 1,000 classes)."""

from __future__ import annotations

import pytest

from rsscale.config import compose
from rsscale.data import DataConfigError
from rsscale.data.registry import shape
from rsscale.launch.grid import GridError, expand
from rsscale.launch.resources import cell_cost, dataset_shape, local_cell_seconds, resource_class

SLURM = {"name": "slurm", "gpus_per_node": 1, "max_nodes": 1, "throughput_flops": 1e12}


def _cell(*overrides: str, validate: bool = True) -> dict:
    composed = compose(["model.stem=small", "data.train_res=16", *overrides])
    return expand(composed, validate=validate)[1][0].config


def test_an_unknown_dataset_is_refused_before_submission():
    with pytest.raises(GridError, match=r"data\.name must be one of .*; got 'cifar10'"):
        _cell("data.name=cifar10")  # the sweep's validation of every cell
    cell = _cell("data.name=cifar10", validate=False)  # and resources never guess its size
    for cost in (cell_cost, local_cell_seconds, lambda c: resource_class(c, SLURM)):
        with pytest.raises(DataConfigError, match=r"^data\.name must be one of .*; got 'cifar10'"):
            cost(cell)


@pytest.mark.parametrize(
    "overrides",
    [(), ("data=synthetic", "data.size=700"), ("data=imagenet", "data.root=/x"), ("data.train_subset=999",)],
)
def test_the_cost_model_uses_the_registry_facts(overrides):
    cell = _cell(*overrides, validate=False)
    s = shape(cell["data"])
    assert dataset_shape(cell["data"]) == (s.train_images, s.num_classes, s.channels)
    per_epoch = cell_cost(cell)["train_flops"] / int(cell["recipe"]["epochs"])
    assert per_epoch == pytest.approx(3.0 * cell_cost(cell)["flops_per_image"] * s.train_images)
