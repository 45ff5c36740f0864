"""Bad ``data:`` values fail early with a message naming the field."""

import numpy as np
import pytest

from rsscale.data import (
    DATASETS,
    DataConfigError,
    DataNotFoundError,
    build_data,
    validate_data_cfg,
    write_idx,
)
from rsscale.data import fashion_mnist as fm


def bad(cfg, match, exc=ValueError):
    with pytest.raises(exc, match=match):
        validate_data_cfg(cfg)


def test_defaults_are_the_contract():
    cfg = validate_data_cfg({})
    assert cfg == {
        "name": "fashion_mnist",
        "root": None,
        "train_res": 32,
        "eval_res": 32,
        "minival_fraction": 0.02,
        "train_subset": None,
        "download": False,
        "num_workers": "auto",
        "randaugment_magnitude": None,
        "crop_pad": None,
        "flip": True,
        "max_unreadable_fraction": 0.001,
        "decode": "auto",
    }
    syn = validate_data_cfg({"name": "synthetic", "num_classes": None})
    assert (syn["num_classes"], syn["size"], syn["val_size"]) == (10, 2048, 512)


@pytest.mark.parametrize("value", [8, 31.5, "32", True, None, 4096])
def test_bad_resolution_names_the_field(value):
    bad({"train_res": value}, r"^data\.train_res must be an integer")
    bad({"eval_res": value}, r"^data\.eval_res must be an integer")


def test_message_format():
    with pytest.raises(DataConfigError) as e:
        validate_data_cfg({"train_res": 8})
    assert str(e.value) == "data.train_res must be an integer >= 16, got 8"


def test_unknown_name_lists_the_allowed_ones():
    bad({"name": "cifar10"}, "data.name must be one of " + ", ".join(DATASETS))


def test_unknown_key_is_named():
    bad({"trainres": 32}, r"^data\.trainres is not a known key")


def test_missing_root_is_named(tmp_path):
    with pytest.raises(ValueError, match=rf"data.root={tmp_path}/nope does not exist"):
        validate_data_cfg({"root": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match=r"data.root="):  # build_data runs the same checks
        build_data({"root": str(tmp_path / "nope")}, batch_size=8, eval_batch_size=8, device="cpu", seed=0)
    bad({"name": "imagenet"}, r"data.root must be set for data.name=imagenet")
    bad({"name": "imagenet", "root": str(tmp_path)}, r"has no train/")


def test_other_bad_values():
    bad({"minival_fraction": 0.9}, r"^data\.minival_fraction")
    bad({"minival_fraction": "0.02"}, r"^data\.minival_fraction")
    bad({"train_subset": 0}, r"^data\.train_subset")
    bad({"train_subset": 58801}, r"^data\.train_subset=58801 exceeds the 58800")
    bad({"name": "synthetic", "size": 100, "train_subset": 99}, r"^data\.train_subset=99 exceeds the 98")
    bad({"download": "yes"}, r"^data\.download")
    bad({"num_workers": -1}, r"^data\.num_workers")
    bad({"num_workers": "many"}, r"^data\.num_workers")
    bad({"randaugment_magnitude": 31}, r"^data\.randaugment_magnitude")
    bad({"num_classes": 5}, r"^data\.num_classes only applies to data.name=synthetic")
    bad({"name": "synthetic", "num_classes": 1}, r"^data\.num_classes")
    validate_data_cfg({"num_workers": 0, "randaugment_magnitude": 0, "num_classes": None})
    with pytest.raises(ValueError, match="data.randaugment_magnitude"):
        build_data(
            {"name": "synthetic"},
            batch_size=8,
            eval_batch_size=8,
            device="cpu",
            seed=0,
            randaugment_magnitude=99,
        )


def test_root_without_files_says_how_to_get_them(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        validate_data_cfg({"root": str(tmp_path)})
    msg = str(e.value)
    assert f"data.root={tmp_path}" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "data.download=true" in msg
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)


def test_root_in_torchvision_layout_is_found(tmp_path):
    """A small copy in torchvision's FashionMNIST/raw layout, plain and gzipped files mixed."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 50)):
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    assert fm.find_fashion_mnist(str(tmp_path))["train_labels"].name == "train-labels-idx1-ubyte"
    b = build_data({"root": str(tmp_path)}, batch_size=16, eval_batch_size=64, device="cpu", seed=0)
    assert (b.train_size, b.minival_size, b.val_size) == (294, 6, 50)


def test_crop_pad_and_flip_are_validated():
    assert validate_data_cfg({"crop_pad": 0, "flip": False})["crop_pad"] == 0
    with pytest.raises(ValueError, match="data.crop_pad"):
        validate_data_cfg({"crop_pad": -1})
    with pytest.raises(ValueError, match="data.flip"):
        validate_data_cfg({"flip": "yes"})
