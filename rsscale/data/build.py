"""``build_data``: the data layer's single entry point, from the ``data:`` config to streams."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import imagenet as inet
from .config import DataConfig, DataConfigError, resolve_decode, resolve_num_workers
from .minival import split_indices, take_subset
from .registry import dataset, validated_data_config
from .streams import EvalStream, InMemoryEvalStream, InMemoryTrainStream, TrainStream


@dataclass
class DataBundle:
    """Everything a run needs from the data layer.

    ``train_size`` counts training samples after minival removal and ``train_subset``;
    ``val`` is None (and ``val_size`` 0) when built with ``for_minival_only``. ``train_eval`` is a
    fixed, clean (un-augmented, eval transform) subset of the training images the size of minival:
    the training side of the generalisation gap (None without a minival).
    """

    train: TrainStream
    minival: EvalStream
    val: EvalStream | None
    num_classes: int
    in_chans: int
    train_size: int
    minival_size: int
    val_size: int
    name: str
    train_eval: EvalStream | None = None


def train_eval_indices(train_idx: np.ndarray, minival_size: int) -> np.ndarray:
    """The first ``minival_size`` training indices (deterministic, nested like ``take_subset``)."""
    return np.asarray(train_idx[: min(len(train_idx), int(minival_size))], dtype=np.int64)


def _check_steps(train: TrainStream) -> None:
    if train.steps_per_epoch < 1:
        raise DataConfigError(
            f"data: {train.num_samples} training samples (after minival and train_subset) are fewer than one "
            f"global batch of {train.global_batch_size} (batch_size x world_size)"
        )


def build_data(
    data_cfg: Mapping | DataConfig,
    *,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device | str,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = False,
    randaugment_magnitude: int | None = None,
    for_minival_only: bool = False,
    bad_image_log: str | os.PathLike | None = None,
) -> DataBundle:
    """Build the train / minival / val streams described by ``data_cfg`` (the ``data:`` block).

    A plain ``data:`` mapping is validated here (schema, files present); a `DataConfig` is taken
    as validated already (`rsscale.config.typed_cell` checks a run's files once, before this).
    ``batch_size`` is per rank; the global batch is ``batch_size * world_size``. The
    ``randaugment_magnitude`` keyword (the recipe's choice) overrides ``data.randaugment_magnitude``.
    ``for_minival_only`` leaves the official val set out (``val`` is None): tuning code paths
    cannot evaluate on it by accident, and ImageNet skips scanning ``val/``. Image trees list the
    files they cannot decode in ``bad_image_log`` (in-memory datasets have none to list).
    Raises DataConfigError (a ValueError) naming the bad ``data.*`` field.
    """
    cfg = data_cfg if isinstance(data_cfg, DataConfig) else validated_data_config(data_cfg)
    for key, v in (("eval_batch_size", eval_batch_size), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {v!r}")
    device = torch.device(device)
    if randaugment_magnitude is not None and randaugment_magnitude != cfg.randaugment_magnitude:
        cfg = dataclasses.replace(cfg, randaugment_magnitude=randaugment_magnitude)  # checks it
    magnitude = cfg.randaugment_magnitude
    common: dict[str, Any] = {
        "rank": rank,
        "world_size": world_size,
        "channels_last": channels_last,
        "device": device,
    }
    name = cfg.name

    train: TrainStream
    minival: EvalStream
    val: EvalStream | None = None
    train_eval: EvalStream | None = None
    load_in_memory = dataset(name).load_in_memory
    if load_in_memory is not None:
        data = load_in_memory(cfg, device, not for_minival_only)
        (train_x, train_y), val_xy = data.train, data.val
        mean, std, fill, pad = data.mean, data.std, data.fill, data.pad
        num_classes, in_chans = data.num_classes, data.in_chans
        if cfg.crop_pad is not None:
            pad = cfg.crop_pad
        n = len(train_y)
        train_idx, minival_idx = split_indices(range(n), cfg.minival_fraction)
        train_idx = take_subset(train_idx, cfg.train_subset)
        train = InMemoryTrainStream(
            train_x,
            train_y,
            train_idx,
            batch_size=batch_size,
            res=cfg.train_res,
            mean=mean,
            std=std,
            seed=seed,
            pad=pad,
            flip=cfg.flip,
            randaugment_magnitude=magnitude,
            randaugment_fill=fill,
            **common,
        )
        ev: dict[str, Any] = {
            "batch_size": eval_batch_size,
            "res": cfg.eval_res,
            "mean": mean,
            "std": std,
            **common,
        }
        minival = InMemoryEvalStream(train_x, train_y, minival_idx, **ev)
        train_eval_idx = train_eval_indices(train_idx, len(minival_idx))
        train_eval = None
        if len(train_eval_idx):
            train_eval = InMemoryEvalStream(train_x, train_y, train_eval_idx, **ev)
        val = None
        if val_xy is not None:
            val = InMemoryEvalStream(val_xy[0], val_xy[1], np.arange(len(val_xy[1])), **ev)
    else:
        root = cfg.root
        if root is None:
            raise DataConfigError(f"data.root must be set for data.name={name} (an image tree)")
        tree = inet.load_tree(
            root,
            with_val=not for_minival_only,
            max_unreadable_fraction=float(cfg.max_unreadable_fraction or 0.0),
        )
        keys = [p.decode() for p in tree["train_paths"]]
        train_idx, minival_idx = split_indices(keys, cfg.minival_fraction)
        train_idx = take_subset(train_idx, cfg.train_subset, keys)
        num_workers = resolve_num_workers(cfg.num_workers)
        train_dir = os.path.join(root, "train")
        bad_log = None if bad_image_log is None else str(bad_image_log)  # unreadable files: listed, skipped
        decode_on = resolve_decode(cfg.decode, device)  # None: PIL in the workers
        raw = {"raw": decode_on is not None}
        train_ds = inet.ImageTreeDataset(
            train_dir,
            tree["train_paths"],
            tree["train_labels"],
            inet.train_transform(cfg.train_res, magnitude),
            seed=seed,
            random=True,
            bad_log=bad_log,
            **raw,
        )
        eval_tf = inet.eval_transform(cfg.eval_res)
        train = inet.LoaderTrainStream(
            train_ds,
            train_idx,
            batch_size=batch_size,
            seed=seed,
            num_workers=num_workers,
            decode_on=decode_on,
            **common,
        )
        _check_steps(train)  # before minival/val start workers
        ev = {"batch_size": eval_batch_size, "num_workers": num_workers, "decode_on": decode_on, **common}
        minival_ds = inet.ImageTreeDataset(
            train_dir,
            tree["train_paths"],
            tree["train_labels"],
            eval_tf,
            seed=seed,
            random=False,
            bad_log=bad_log,
            **raw,
        )
        minival = inet.LoaderEvalStream(minival_ds, minival_idx, **ev)
        train_eval_idx = train_eval_indices(train_idx, len(minival_idx))
        train_eval = None
        if len(train_eval_idx):
            train_eval = inet.LoaderEvalStream(minival_ds, train_eval_idx, persistent=False, **ev)
        val = None
        if not for_minival_only:
            val_ds = inet.ImageTreeDataset(
                os.path.join(root, "val"),
                tree["val_paths"],
                tree["val_labels"],
                eval_tf,
                seed=seed,
                random=False,
                bad_log=bad_log,
                **raw,
            )
            val = inet.LoaderEvalStream(val_ds, np.arange(len(tree["val_paths"])), persistent=False, **ev)
        num_classes, in_chans = len(tree["classes"]), inet.IN_CHANS
    _check_steps(train)
    return DataBundle(
        train=train,
        minival=minival,
        val=val,
        num_classes=int(num_classes),
        in_chans=int(in_chans),
        train_size=train.num_samples,
        minival_size=minival.num_samples,
        val_size=0 if val is None else val.num_samples,
        name=name,
        train_eval=train_eval,
    )
