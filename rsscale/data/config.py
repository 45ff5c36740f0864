"""Validation of the ``data:`` config block.

Every check here is cheap (no image is decoded) so that a sweep can validate all its cells
before submitting anything, and the messages name the offending field so a bad override is
fixed at the command line rather than found in a SLURM log an hour later.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DATASETS = ("fashion_mnist", "imagenet", "synthetic")

DEFAULTS: dict[str, Any] = {
    "name": "fashion_mnist",
    "root": None,
    "train_res": 32,
    "eval_res": 32,
    "minival_fraction": 0.02,
    "train_subset": None,
    "download": False,
    "num_workers": "auto",
    "randaugment_magnitude": None,
    "crop_pad": None,  # in-memory datasets: random-crop padding in px (null: the dataset's default, 0: off)
    "flip": True,  # random horizontal flip in training
    "max_unreadable_fraction": 0.001,  # image trees: share of undecodable files skipped (and listed)
    "decode": "auto",  # image trees: JPEG decode + augment in CPU workers (cpu) or batched on the GPU (cuda)
}
DECODES = ("auto", "cpu", "cuda")
# Keys that only the synthetic dataset reads; other datasets accept them only as null.
SYNTHETIC_DEFAULTS: dict[str, Any] = {"num_classes": 10, "size": 2048, "val_size": 512}

MIN_RES, MAX_RES = 16, 2048
MAX_MINIVAL_FRACTION = 0.5
MAX_RANDAUGMENT_MAGNITUDE = 30  # torchvision's RandAugment has 31 magnitude bins


class DataConfigError(ValueError):
    """A bad ``data:`` value; the message starts with the field, e.g. ``data.train_res``."""


class DataNotFoundError(DataConfigError, FileNotFoundError):
    """The dataset files are missing; both a ValueError (config) and a FileNotFoundError."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int_at_least(cfg: Mapping, key: str, lo: int, hi: int | None = None) -> int:
    v = cfg[key]
    if not _is_int(v) or v < lo:
        raise DataConfigError(f"data.{key} must be an integer >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise DataConfigError(f"data.{key} must be an integer <= {hi}, got {v!r}")
    return int(v)


def resolve_num_workers(value: Any) -> int:
    """``auto`` -> ``min(8, CPUs per rank - 1)``: one core stays with the training process, so a
    2-core box gets 1 worker that overlaps JPEG decoding with the step. CPUs are counted from this
    process's affinity (what SLURM granted) and split between ``LOCAL_WORLD_SIZE`` ranks."""
    if value != "auto":
        return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(8, cpus // local_ranks - 1))


def check_data_cfg(data_cfg: Mapping) -> dict[str, Any]:
    """Schema checks only (types, ranges, unknown keys); returns the config with defaults filled."""
    if not isinstance(data_cfg, Mapping):
        raise DataConfigError(f"data must be a mapping, got {type(data_cfg).__name__}")
    allowed = {**DEFAULTS, **SYNTHETIC_DEFAULTS}
    unknown = sorted(set(data_cfg) - set(allowed))
    if unknown:
        raise DataConfigError(f"data.{unknown[0]} is not a known key; allowed keys: {', '.join(allowed)}")
    cfg: dict[str, Any] = {**DEFAULTS, **dict(data_cfg)}

    name = cfg["name"]
    if name not in DATASETS:
        raise DataConfigError(f"data.name must be one of {', '.join(DATASETS)}; got {name!r}")

    for key in ("train_res", "eval_res"):
        cfg[key] = _int_at_least(cfg, key, MIN_RES, MAX_RES)

    f = cfg["minival_fraction"]
    if f is not None and (not _is_real(f) or not 0.0 < float(f) <= MAX_MINIVAL_FRACTION):
        raise DataConfigError(
            f"data.minival_fraction must be a number in (0, {MAX_MINIVAL_FRACTION}], or null for no minival "
            f"(then reported as missing, never as 0.0); got {f!r}"
        )
    cfg["minival_fraction"] = None if f is None else float(f)

    if cfg["train_subset"] is not None:
        cfg["train_subset"] = _int_at_least(cfg, "train_subset", 1)

    if not isinstance(cfg["download"], bool):
        raise DataConfigError(f"data.download must be true or false, got {cfg['download']!r}")

    nw = cfg["num_workers"]
    if nw != "auto" and (not _is_int(nw) or nw < 0):
        raise DataConfigError(f"data.num_workers must be 'auto' or an integer >= 0, got {nw!r}")
    cfg["num_workers"] = nw if nw == "auto" else int(nw)

    ra = cfg["randaugment_magnitude"]
    if ra is not None and (not _is_int(ra) or not 0 <= ra <= MAX_RANDAUGMENT_MAGNITUDE):
        raise DataConfigError(
            "data.randaugment_magnitude must be null or an integer in "
            f"[0, {MAX_RANDAUGMENT_MAGNITUDE}], got {ra!r}"
        )
    cfg["randaugment_magnitude"] = None if ra is None else int(ra)

    if cfg["crop_pad"] is not None:
        cfg["crop_pad"] = _int_at_least(cfg, "crop_pad", 0, 16)
    mu = cfg["max_unreadable_fraction"]
    if not _is_real(mu) or not 0.0 <= float(mu) < 1.0:
        raise DataConfigError(f"data.max_unreadable_fraction must be a number in [0, 1), got {mu!r}")
    if cfg["decode"] not in DECODES:
        raise DataConfigError(f"data.decode must be one of {', '.join(DECODES)}; got {cfg['decode']!r}")
    if not isinstance(cfg["flip"], bool):
        raise DataConfigError(f"data.flip must be true or false, got {cfg['flip']!r}")

    for key, default in SYNTHETIC_DEFAULTS.items():
        if name == "synthetic":
            if cfg.get(key) is None:
                cfg[key] = default
            cfg[key] = _int_at_least(cfg, key, 2 if key == "num_classes" else 1)
        elif cfg.get(key) is not None:
            raise DataConfigError(f"data.{key} only applies to data.name=synthetic (got data.name={name})")
        else:
            cfg.pop(key, None)

    root = cfg["root"]
    if root is not None:
        if not isinstance(root, (str, os.PathLike)) or str(root) == "":
            raise DataConfigError(f"data.root must be a directory path or null, got {root!r}")
        cfg["root"] = str(Path(os.path.expanduser(os.fspath(root))))
    return cfg


def resolve_decode(value: str, device) -> Any:
    """The device that decodes image-tree JPEGs, or None for PIL in the DataLoader workers.
    ``auto``: the GPU when training on one, else the workers."""
    import torch

    device = torch.device(device)
    if value == "cuda" and device.type != "cuda":
        raise DataConfigError(f"data.decode=cuda needs a CUDA device (training runs on {device})")
    return device if value != "cpu" and device.type == "cuda" else None


def validate_data_cfg(data_cfg: Mapping) -> dict[str, Any]:
    """Check ``data_cfg`` without loading any data; raise DataConfigError naming the field.

    Beyond the schema this checks that the data is there (Fashion-MNIST IDX files, the ImageNet
    ``train/`` and ``val/`` directories) and that ``train_subset`` fits, so that a sweep fails
    before it submits anything. Returns the config with defaults filled in.
    """
    cfg = check_data_cfg(data_cfg)
    name, root = cfg["name"], cfg["root"]
    downloadable = name == "fashion_mnist" and cfg["download"]
    if name != "synthetic" and root is not None and not os.path.isdir(root) and not downloadable:
        raise DataNotFoundError(f"data.root={root} does not exist (or is not a directory)")
    from .minival import minival_count

    if name == "fashion_mnist":
        from .fashion_mnist import TRAIN_SIZE, find_fashion_mnist

        if find_fashion_mnist(root) is None and not cfg["download"]:
            from .fashion_mnist import not_found_error

            raise not_found_error(root)
        pool = TRAIN_SIZE
    elif name == "imagenet":
        from .imagenet import check_tree

        check_tree(root)
        pool = None  # unknown without scanning the tree; build_data checks it
    else:
        pool = cfg["size"]
    if pool is not None and cfg["minival_fraction"] and not minival_count(pool, cfg["minival_fraction"]):
        raise DataConfigError(
            f"data.minival_fraction={cfg['minival_fraction']} of {pool} images is an empty minival; "
            "use a larger fraction, or null for no minival"
        )
    if pool is not None and cfg["train_subset"] is not None:
        left = pool - minival_count(pool, cfg["minival_fraction"])
        if cfg["train_subset"] > left:
            raise DataConfigError(
                f"data.train_subset={cfg['train_subset']} exceeds the {left} training samples "
                "left after minival"
            )
    return cfg


def train_samples(data_cfg: Mapping) -> int | None:
    """Training images after minival and train_subset, where known without scanning (None: ImageNet)."""
    cfg = check_data_cfg(data_cfg)
    if cfg["name"] == "fashion_mnist":
        from .fashion_mnist import TRAIN_SIZE as pool
    elif cfg["name"] == "synthetic":
        pool = cfg["size"]
    else:
        return None
    from .minival import minival_count

    left = pool - minival_count(pool, cfg["minival_fraction"])
    return min(left, cfg["train_subset"]) if cfg["train_subset"] is not None else left


def check_batch_fits(data_cfg: Mapping, global_batch: int) -> None:
    """A global batch larger than the training set would train zero steps: an error before launch."""
    n = train_samples(data_cfg)
    if n is not None and global_batch > n:
        raise DataConfigError(
            f"recipe.batch_size={global_batch} is larger than the {n} training images of data.name="
            f"{data_cfg.get('name')} (after minival and train_subset); lower the batch or use more data"
        )
