"""The ``data:`` config block's schema: `DataConfig` (defaults and checks in one place) and its errors.

Every check here is cheap (no image is decoded) so that a sweep can validate all its cells
before submitting anything, and the messages name the offending field so a bad override is
fixed at the command line rather than found in a SLURM log an hour later.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsscale.config_schema import OMIT

MIN_RES, MAX_RES = 16, 2048
DECODES = ("auto", "cpu", "cuda")
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


def resolve_decode(value: str, device) -> Any:
    """The device that decodes image-tree JPEGs, or None for PIL in the DataLoader workers.
    ``auto``: the GPU when training on one, else the workers."""
    import torch

    device = torch.device(device)
    if value == "cuda" and device.type != "cuda":
        raise DataConfigError(f"data.decode=cuda needs a CUDA device (training runs on {device})")
    return device if value != "cpu" and device.type == "cuda" else None


def _int_at_least(cfg: Any, key: str, lo: int, hi: int | None = None) -> int:
    v = getattr(cfg, key)
    if not _is_int(v) or v < lo:
        raise DataConfigError(f"data.{key} must be an integer >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise DataConfigError(f"data.{key} must be an integer <= {hi}, got {v!r}")
    return int(v)


@dataclass
class DataConfig:
    """The `data:` group's fields common to every dataset, their defaults and checks (types, ranges).

    Construction normalises and validates (DataConfigError naming the field); which dataset a name
    means, and its own fields, are the registry's business (rsscale/data/registry.py).
    """

    name: str = "fashion_mnist"
    root: str | None = None  # null: the dataset's default place (Fashion-MNIST: Debian's package)
    download: bool = False
    train_res: int = 32
    eval_res: int = field(default=32, metadata={"preset": "${data.train_res}"})
    minival_fraction: float | None = 0.02  # (0, 0.5], or null for no minival (metrics then null)
    train_subset: int | None = None  # use only the first N training images (after minival is held out)
    num_workers: int | str = "auto"  # auto: min(8, CPUs per rank - 1) (`resolve_num_workers`)
    randaugment_magnitude: int | None = field(
        default=None, metadata={"preset": "${recipe.randaugment_magnitude}"}
    )
    crop_pad: int | None = None  # in-memory data: random-crop padding px (null: dataset default, 0: off)
    flip: bool = True  # random horizontal flip in training
    # image trees: share of undecodable files skipped (and listed); only the imagenet preset composes it
    max_unreadable_fraction: float = field(default=0.001, metadata={"preset": OMIT})
    # image trees: JPEG decode + augment in the CPU workers (cpu) or batched on the GPU (cuda);
    # auto: the GPU when training on one (`resolve_decode`); only the imagenet preset composes it
    decode: str = field(default="auto", metadata={"preset": OMIT})

    def __post_init__(self) -> None:
        for key in ("train_res", "eval_res"):
            setattr(self, key, _int_at_least(self, key, MIN_RES, MAX_RES))
        f = self.minival_fraction
        if f is not None and (not _is_real(f) or not 0.0 < float(f) <= MAX_MINIVAL_FRACTION):
            raise DataConfigError(
                f"data.minival_fraction must be a number in (0, {MAX_MINIVAL_FRACTION}], or null for no "
                f"minival (then reported as missing, never as 0.0); got {f!r}"
            )
        self.minival_fraction = None if f is None else float(f)
        if self.train_subset is not None:
            self.train_subset = _int_at_least(self, "train_subset", 1)
        if not isinstance(self.download, bool):
            raise DataConfigError(f"data.download must be true or false, got {self.download!r}")
        nw = self.num_workers
        if nw != "auto" and (not _is_int(nw) or int(nw) < 0):
            raise DataConfigError(f"data.num_workers must be 'auto' or an integer >= 0, got {nw!r}")
        self.num_workers = nw if nw == "auto" else int(nw)
        ra = self.randaugment_magnitude
        if ra is not None and (not _is_int(ra) or not 0 <= ra <= MAX_RANDAUGMENT_MAGNITUDE):
            raise DataConfigError(
                "data.randaugment_magnitude must be null or an integer in "
                f"[0, {MAX_RANDAUGMENT_MAGNITUDE}], got {ra!r}"
            )
        self.randaugment_magnitude = None if ra is None else int(ra)
        if self.crop_pad is not None:
            self.crop_pad = _int_at_least(self, "crop_pad", 0, 16)
        mu = self.max_unreadable_fraction
        if not _is_real(mu) or not 0.0 <= float(mu) < 1.0:
            raise DataConfigError(f"data.max_unreadable_fraction must be a number in [0, 1), got {mu!r}")
        if not isinstance(self.flip, bool):
            raise DataConfigError(f"data.flip must be true or false, got {self.flip!r}")
        if self.decode not in DECODES:
            raise DataConfigError(f"data.decode must be one of {', '.join(DECODES)}; got {self.decode!r}")
        self._check_extra()
        root = self.root
        if root is not None:
            if not isinstance(root, (str, os.PathLike)) or str(root) == "":
                raise DataConfigError(f"data.root must be a directory path or null, got {root!r}")
            self.root = str(Path(os.path.expanduser(os.fspath(root))))

    def _check_extra(self) -> None:
        """A dataset's own fields (subclasses)."""


@dataclass
class SyntheticDataConfig(DataConfig):
    """data.name=synthetic: deterministic tensors for tests and benchmarks (rsscale/data/synthetic.py)."""

    num_classes: int = 10
    size: int = 2048  # training pool (minival comes out of it)
    val_size: int = field(default=512, metadata={"preset": OMIT})

    def _check_extra(self) -> None:
        for key in ("num_classes", "size", "val_size"):
            setattr(self, key, _int_at_least(self, key, 2 if key == "num_classes" else 1))
