"""The dataset registry owns each dataset's facts (images per split, classes, channels): what cost
estimates and the model head need before any data is loaded; an unknown name is an error, not a guess."""

from __future__ import annotations

import pytest

from rsscale.data import DataConfig, DataConfigError
from rsscale.data import fashion_mnist as fm
from rsscale.data.registry import DATASETS, Shape, dataset, shape, train_samples


def test_each_dataset_states_its_facts():
    assert shape({"name": "fashion_mnist"}) == Shape(58_800, 1_200, 10_000, 10, 1, exact=True)
    # an image tree: ILSVRC-2012's published counts (the tree itself is counted when it is loaded)
    assert shape({"name": "imagenet", "root": "/x"}) == Shape(1_255_544, 25_623, 50_000, 1000, 3, exact=False)
    syn = {"name": "synthetic", "size": 512, "val_size": 64, "num_classes": 7}
    assert shape(syn) == Shape(502, 10, 64, 7, 3, exact=True)  # the config gives the facts


def test_facts_follow_minival_and_train_subset():
    assert shape({"minival_fraction": None}).train_images == fm.TRAIN_SIZE
    assert shape({"minival_fraction": 0.1, "train_subset": 1000}) == Shape(1000, 6000, 10_000, 10, 1, True)
    assert train_samples({"name": "imagenet", "root": "/x"}) is None  # not exact: no check relies on it


def test_a_typed_data_config_is_read_as_is():
    cfg = DataConfig(train_subset=300)
    assert shape(cfg).train_images == 300 and train_samples(cfg) == 300


def test_only_image_trees_read_files_while_training():
    assert [n for n, d in DATASETS.items() if d.image_tree] == ["imagenet"]


@pytest.mark.parametrize("ask", [shape, train_samples, lambda c: dataset(c["name"])])
def test_an_unknown_dataset_is_an_error_naming_the_registered_ones(ask):
    message = r"^data\.name must be one of fashion_mnist, imagenet, synthetic; got 'cifar10'"
    with pytest.raises(DataConfigError, match=message):
        ask({"name": "cifar10"})
