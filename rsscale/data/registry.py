"""The datasets by name: ``DATASETS = {"fashion_mnist": ..., "imagenet": ..., "synthetic": ...}``.

Each entry is the one place that knows a dataset: its schema (`DataConfig` or a subclass with the
dataset's own fields), the extra fields its preset composes, the cheap check that its files are
there, its facts (`Facts`: images per split, classes, channels; what cost estimates and the model
head need before any data is loaded) and, for in-memory datasets, how to load its tensors. An
unknown ``data.name`` is a DataConfigError wherever a fact is asked for; there is no fallback.
Imports point one way: config (schema) <- dataset modules <- registry <- build.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from rsscale import config_schema

from . import fashion_mnist as fm
from . import imagenet as inet
from . import synthetic as syn
from .config import DataConfig, DataConfigError, DataNotFoundError, SyntheticDataConfig
from .minival import minival_count


@dataclass(frozen=True)
class InMemory:
    """An in-memory dataset's tensors (uint8 images [N, C, H, W], int64 labels) and normalisation."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    in_chans: int
    fill: int  # RandAugment fill value
    pad: int  # default random-crop padding (data.crop_pad overrides)


@dataclass(frozen=True)
class Facts:
    """A dataset before any of it is loaded: images per split, classes, channels.

    `exact` is False where the counts are the dataset's published ones rather than those of the
    files at ``data.root`` (an image tree: only a scan counts it); estimates use them either way,
    checks that must be right (a batch larger than the training set) only exact ones.
    """

    train_images: int  # the training pool, before minival is held out
    val_images: int  # the labelled evaluation split (Fashion-MNIST's test set, ImageNet's val)
    num_classes: int
    channels: int
    exact: bool = True


@dataclass(frozen=True)
class Dataset:
    schema: type[DataConfig]
    check_files: Callable[[DataConfig], None]
    facts: Callable[[DataConfig], Facts]  # some depend on the config (synthetic: size, num_classes)
    preset_fields: tuple[str, ...] = ()  # schema fields its preset composes beyond the common ones
    load_in_memory: Callable[[DataConfig, torch.device, bool], InMemory] | None = None  # None: image tree
    reads_root: bool = True  # its files live under data.root (synthetic data has none)
    downloads: bool = False  # data.download=true fetches the files (so a missing root is fine)

    @property
    def image_tree(self) -> bool:
        """Read from files while training (a DataLoader over ``data.root``), not held in memory."""
        return self.load_in_memory is None

    def train_pool(self, cfg: DataConfig) -> int | None:
        """Training images before minival, where known without scanning (None: an image tree)."""
        f = self.facts(cfg)
        return f.train_images if f.exact else None


@dataclass(frozen=True)
class Shape:
    """A cell's data as its run will see it (after minival and ``train_subset``), before loading."""

    train_images: int
    minival_images: int
    val_images: int
    num_classes: int
    channels: int
    exact: bool  # False: an image tree's published counts (see `Facts`)


def _fm_files(cfg: DataConfig) -> None:
    if fm.find_fashion_mnist(cfg.root) is None and not cfg.download:
        raise fm.not_found_error(cfg.root)


def _fm_load(cfg: DataConfig, device: torch.device, with_val: bool) -> InMemory:
    arrays = fm.load_arrays(cfg.root, cfg.download)
    train = fm.to_device(arrays["train_images"], arrays["train_labels"], device)
    val = fm.to_device(arrays["val_images"], arrays["val_labels"], device) if with_val else None
    return InMemory(train, val, fm.MEAN, fm.STD, fm.NUM_CLASSES, fm.IN_CHANS, fill=0, pad=fm.PAD)


def _syn_load(cfg: DataConfig, device: torch.device, with_val: bool) -> InMemory:
    assert isinstance(cfg, SyntheticDataConfig)  # the entry's schema
    x, y = syn.make_split("train", cfg.size, cfg.num_classes)
    val = None
    if with_val:
        vx, vy = syn.make_split("val", cfg.val_size, cfg.num_classes)
        val = (vx.to(device), vy.to(device))
    train = (x.to(device), y.to(device))
    return InMemory(train, val, syn.MEAN, syn.STD, cfg.num_classes, syn.IN_CHANS, fill=128, pad=2)


def _syn_facts(cfg: DataConfig) -> Facts:
    assert isinstance(cfg, SyntheticDataConfig)  # the entry's schema
    return Facts(cfg.size, cfg.val_size, cfg.num_classes, syn.IN_CHANS)


DATASETS: dict[str, Dataset] = {
    "fashion_mnist": Dataset(
        DataConfig,
        _fm_files,
        lambda cfg: Facts(fm.TRAIN_SIZE, fm.VAL_SIZE, fm.NUM_CLASSES, fm.IN_CHANS),
        load_in_memory=_fm_load,
        downloads=True,
    ),
    "imagenet": Dataset(
        DataConfig,
        lambda cfg: inet.check_tree(cfg.root, float(cfg.max_unreadable_fraction)),
        # ILSVRC-2012's published counts; any tree at data.root is counted only when build_data scans it
        lambda cfg: Facts(inet.TRAIN_SIZE, inet.VAL_SIZE, inet.NUM_CLASSES, inet.IN_CHANS, exact=False),
        preset_fields=("max_unreadable_fraction", "decode"),
    ),
    "synthetic": Dataset(
        SyntheticDataConfig,
        lambda cfg: None,
        _syn_facts,
        preset_fields=("num_classes", "size"),
        load_in_memory=_syn_load,
        reads_root=False,
    ),
}
# Fields only some datasets have; the others accept them only as null.
_EXTRA = {f.name for d in DATASETS.values() for f in dataclasses.fields(d.schema)} - {
    f.name for f in dataclasses.fields(DataConfig)
}


def preset_node(name: str) -> dict[str, Any]:
    """The base node of `conf/data/<name>.yaml`: the common defaults plus the dataset's preset fields."""
    spec = DATASETS[name]
    own = config_schema.defaults(spec.schema)
    return config_schema.preset_node(DataConfig, name=name, **{k: own[k] for k in spec.preset_fields})


def dataset(name: str) -> Dataset:
    """The registry entry of ``data.name``; a DataConfigError naming the registered ones."""
    if name not in DATASETS:
        raise DataConfigError(f"data.name must be one of {', '.join(DATASETS)}; got {name!r}")
    return DATASETS[name]


def data_config(data_cfg: Mapping | DataConfig) -> DataConfig:
    """Schema checks only (types, ranges, unknown keys): the dataset's config dataclass."""
    if isinstance(data_cfg, DataConfig):
        return data_cfg  # checked when it was made
    if not isinstance(data_cfg, Mapping):
        raise DataConfigError(f"data must be a mapping, got {type(data_cfg).__name__}")
    allowed = [f.name for f in dataclasses.fields(DataConfig)] + sorted(_EXTRA)
    unknown = sorted(set(data_cfg) - set(allowed))
    if unknown:
        raise DataConfigError(f"data.{unknown[0]} is not a known key; allowed keys: {', '.join(allowed)}")
    cfg = dict(data_cfg)
    name = cfg.get("name", DataConfig.name)
    own = {f.name for f in dataclasses.fields(dataset(name).schema)}
    for key in sorted(_EXTRA):
        if key in own:
            if cfg.get(key, 0) is None:
                del cfg[key]  # null: the default
        elif cfg.pop(key, None) is not None:
            raise DataConfigError(f"data.{key} only applies to data.name=synthetic (got data.name={name})")
    return DATASETS[name].schema(**cfg)


def validate_data_cfg(data_cfg: Mapping) -> dict[str, Any]:
    """Check ``data_cfg`` without loading any data; raise DataConfigError naming the field.

    Beyond the schema this checks that the data is there (Fashion-MNIST IDX files, the ImageNet
    ``train/`` and ``val/`` directories) and that ``train_subset`` fits, so that a sweep fails
    before it submits anything. Returns the config with defaults filled in.
    """
    return dataclasses.asdict(validated_data_config(data_cfg))


def validated_data_config(data_cfg: Mapping | DataConfig) -> DataConfig:
    """`validate_data_cfg`'s checks; the dataset's config dataclass."""
    cfg = data_config(data_cfg)
    spec = dataset(cfg.name)
    downloadable = spec.downloads and cfg.download
    root = cfg.root
    if spec.reads_root and root is not None and not os.path.isdir(root) and not downloadable:
        raise DataNotFoundError(f"data.root={root} does not exist (or is not a directory)")
    spec.check_files(cfg)
    pool = spec.train_pool(cfg)
    if pool is not None and cfg.minival_fraction and not minival_count(pool, cfg.minival_fraction):
        raise DataConfigError(
            f"data.minival_fraction={cfg.minival_fraction} of {pool} images is an empty minival; "
            "use a larger fraction, or null for no minival"
        )
    if pool is not None and cfg.train_subset is not None:
        left = pool - minival_count(pool, cfg.minival_fraction)
        if cfg.train_subset > left:
            raise DataConfigError(
                f"data.train_subset={cfg.train_subset} exceeds the {left} training samples left after minival"
            )
    return cfg


def shape(data_cfg: Mapping | DataConfig) -> Shape:
    """The images per split, classes and channels a cell's data config describes, without loading
    it (cost estimates, the resources of a job); DataConfigError for an unknown ``data.name``."""
    cfg = data_config(data_cfg)
    f = dataset(cfg.name).facts(cfg)
    minival = minival_count(f.train_images, cfg.minival_fraction)
    train = f.train_images - minival
    if cfg.train_subset is not None:
        train = min(train, cfg.train_subset)
    return Shape(train, minival, f.val_images, f.num_classes, f.channels, f.exact)


def train_samples(data_cfg: Mapping | DataConfig) -> int | None:
    """Training images after minival and train_subset, where known without scanning (None: ImageNet)."""
    s = shape(data_cfg)
    return s.train_images if s.exact else None


def check_batch_fits(data_cfg: Mapping | DataConfig, global_batch: int) -> None:
    """A global batch larger than the training set would train zero steps: an error before launch."""
    cfg = data_config(data_cfg)
    n = train_samples(cfg)
    if n is not None and global_batch > n:
        raise DataConfigError(
            f"recipe.batch_size={global_batch} is larger than the {n} training images of data.name="
            f"{cfg.name} (after minival and train_subset); lower the batch or use more data"
        )
