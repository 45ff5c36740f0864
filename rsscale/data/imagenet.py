"""ImageNet (or any ImageFolder-style tree): ``root/train/<class>/*.JPEG``, ``root/val/<class>/*.JPEG``.

Decoding runs in DataLoader workers and yields uint8 crops; conversion to float and
normalisation happen on the device after a pinned, non-blocking copy (4x less PCIe traffic than
float). Augmentation is exactly resumable: the sampler hands each worker ``(epoch, index)``
keys and the dataset reseeds a forked torch RNG from ``(seed, epoch, index)`` around the
torchvision v2 pipeline, so a sample's crop does not depend on worker count, batch position or
what was drawn before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from .config import DataConfigError, DataNotFoundError
from .streams import (
    EvalStream,
    TrainStream,
    _norm_tensors,
    check_distributed,
    derive_seed,
    epoch_order,
    single_thread,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IN_CHANS = 3
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
CROP_FRACTION = 0.875
RANDAUGMENT_FILL = 128  # grey, as the released TF RandAugment fills rotated/translated borders


def check_tree(root: str | None) -> None:
    """Cheap existence check used by validate_data_cfg (no file listing)."""
    if root is None:
        raise DataConfigError(
            "data.root must be set for data.name=imagenet (a directory with train/<class>/ and val/<class>/)"
        )
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise DataNotFoundError(
                f"data.root={root} has no {split}/ directory (expected {split}/<class>/*.JPEG)"
            )
    for split in ("train", "val"):
        _check_sample(os.path.join(root, split))


def _check_sample(split_dir: str) -> None:
    """The first class directory with an image holds a decodable one: an empty tree or one that is
    not images fails before launch (one listing of one class directory; not a full scan)."""
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        images = sorted(f.name for f in os.scandir(entry.path) if f.name.lower().endswith(EXTENSIONS))
        if not images:
            continue
        path = os.path.join(entry.path, images[0])
        try:
            decode_rgb(path)
        except Exception as e:  # noqa: BLE001 - any decoder error: say which file
            raise DataConfigError(f"data.root: {path} cannot be decoded ({type(e).__name__}: {e})") from None
        return
    raise DataNotFoundError(f"data.root: no images ({', '.join(EXTENSIONS)}) under {split_dir}/<class>/")


def scan_split(
    split_dir: str, classes: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted class names, relative paths (bytes array, ``<class>/<file>``) and int64 labels.

    Paths are a fixed-width bytes array rather than a list of str: forked DataLoader workers
    would otherwise copy a million refcounted objects each.
    """
    found = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if classes is None:
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataConfigError(f"data.root: {split_dir} has classes missing from train/: {extra[:5]}")
    class_idx = {c: i for i, c in enumerate(classes)}
    paths: list[str] = []
    labels: list[int] = []
    for c in found:
        names = sorted(
            e.name for e in os.scandir(os.path.join(split_dir, c)) if e.name.lower().endswith(EXTENSIONS)
        )
        paths.extend(f"{c}/{n}" for n in names)
        labels.extend([class_idx[c]] * len(names))
    if not paths:
        raise DataNotFoundError(f"data.root: no images ({', '.join(EXTENSIONS)}) under {split_dir}/<class>/")
    return list(classes), np.array([p.encode() for p in paths]), np.asarray(labels, dtype=np.int64)


def decode_rgb(path: str) -> torch.Tensor:
    """uint8 [3,H,W] via PIL (handles CMYK and PNG-as-JPEG files; torchvision.io decoding is
    deprecated since 0.29)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def train_transform(res: int, randaugment_magnitude: int | None):
    """RandomResizedCrop(0.08-1, 3/4-4/3, bicubic) + flip [+ RandAugment(2, M)] on uint8 tensors."""
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(
            res,
            scale=(0.08, 1.0),
            ratio=(3 / 4, 4 / 3),
            interpolation=v2.InterpolationMode.BICUBIC,
            antialias=True,
        ),
        v2.RandomHorizontalFlip(),
    ]
    if randaugment_magnitude is not None:
        ops.append(v2.RandAugment(num_ops=2, magnitude=int(randaugment_magnitude), fill=RANDAUGMENT_FILL))
    return v2.Compose(ops)


def eval_transform(res: int):
    """Resize the short side to res/0.875 (bicubic), centre-crop res: the paper's 0.875 crop."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(int(res / CROP_FRACTION), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(res),
        ]
    )


class ImageTreeDataset(Dataset):
    """Indexed by ``(epoch, index)``; returns ``(uint8 [3,res,res], label, index)``."""

    def __init__(
        self,
        split_dir: str,
        paths: np.ndarray,
        labels: np.ndarray,
        transform,
        *,
        seed: int,
        random: bool,
        bad_log: str | None = None,
    ):
        self.split_dir, self.paths, self.labels = split_dir, paths, labels
        self.transform, self.seed, self.random = transform, int(seed), random
        self.bad_log = bad_log

    def _decode(self, index: int) -> tuple[torch.Tensor, int]:
        """The image at `index`; an unreadable file is listed in `bad_log` and replaced by the next
        readable one (deterministic: the same substitute every epoch, on every worker and rank)."""
        if self.bad_log is None:
            return decode_rgb(os.path.join(self.split_dir, self.paths[index].decode())), index
        for k in range(min(len(self.paths), 64)):
            i = (index + k) % len(self.paths)
            path = os.path.join(self.split_dir, self.paths[i].decode())
            try:
                return decode_rgb(path), i
            except Exception as e:  # noqa: BLE001 - any decoder error: count, list, skip
                with open(self.bad_log, "a") as f:  # O_APPEND: one whole line per write, across workers
                    f.write(f"{path}\t{type(e).__name__}: {str(e)[:200]}\n")
        first = self.paths[index].decode()
        raise DataConfigError(f"data.root: 64 consecutive unreadable images from {first}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        # Workers already run single-threaded; with num_workers=0 we are in the main process.
        with single_thread(get_worker_info() is None):
            img, src = self._decode(index)
            if not self.random:
                return self.transform(img), int(self.labels[src]), int(index)
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(derive_seed(self.seed, "imagenet", epoch, index))
                img = self.transform(img)
        return img, int(self.labels[src]), int(index)


class EpochBatchSampler(Sampler):
    """This rank's slice of each global batch of the epoch's permutation, from ``start_step`` on.

    Set ``epoch``/``start_step`` with :meth:`set_epoch` before iterating; persistent workers keep
    running and the DataLoader re-reads the sampler on every ``iter()``.
    """

    def __init__(self, train_idx: np.ndarray, batch_size: int, rank: int, world_size: int, seed: int):
        self.train_idx = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.steps = len(self.train_idx) // (batch_size * world_size)
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = int(epoch), int(start_step)

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.train_idx, self.seed, self.epoch)
        gb, b = self.batch_size * self.world_size, self.batch_size
        for step in range(self.start_step, self.steps):
            lo = step * gb + self.rank * b
            yield [(self.epoch, int(i)) for i in order[lo : lo + b]]


def _loader(dataset, batch_sampler, num_workers: int, device: torch.device, persistent: bool) -> DataLoader:
    kwargs = {}
    if num_workers > 0:
        kwargs = {"persistent_workers": persistent, "prefetch_factor": 4}
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        **kwargs,
    )


def _to_device(x: torch.Tensor, device, mean255, std255, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True).float()
    x = (x - mean255) / std255
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class LoaderTrainStream(TrainStream):
    """Training batches from an image tree through a DataLoader (see module docstring)."""

    def __init__(
        self,
        dataset: ImageTreeDataset,
        train_idx: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ):
        check_distributed(batch_size, rank, world_size)
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self.device, self.channels_last = torch.device(device), channels_last
        self.num_samples = len(train_idx)
        self.seed = int(seed)
        self.sampler = EpochBatchSampler(train_idx, self.batch_size, self.rank, self.world_size, self.seed)
        self._train_idx_t = self.sampler.train_idx
        self.steps_per_epoch = self.sampler.steps
        self.loader = _loader(dataset, self.sampler, num_workers, self.device, persistent=True)
        self.mean255, self.std255 = _norm_tensors(MEAN, STD, self.device)

    def batches(self, epoch: int, start_step: int = 0, *, return_indices: bool = False) -> Iterator:
        self._check_step(epoch, start_step)  # eagerly, not at the first next()
        return self._iter(int(epoch), int(start_step), return_indices)

    def _iter(self, epoch: int, start_step: int, return_indices: bool) -> Iterator:
        if start_step == self.steps_per_epoch:
            return
        self.sampler.set_epoch(epoch, start_step)
        for imgs, labels, idx in self.loader:
            x = _to_device(imgs, self.device, self.mean255, self.std255, self.channels_last)
            y = labels.to(self.device, non_blocking=True)
            yield (x, y, idx) if return_indices else (x, y)


class LoaderEvalStream(EvalStream):
    """Evaluation batches (this rank's ``r::world_size`` shard) through a DataLoader."""

    def __init__(
        self,
        dataset: ImageTreeDataset,
        indices: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        num_workers: int,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        persistent: bool = True,
    ):
        check_distributed(batch_size, rank, world_size)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size, self.device, self.channels_last = (
            int(batch_size),
            torch.device(device),
            channels_last,
        )
        self.num_samples = len(self.indices)
        local = self.indices[rank::world_size]
        self.local_num_samples = len(local)
        batches = [
            [(0, int(i)) for i in local[lo : lo + batch_size]] for lo in range(0, len(local), batch_size)
        ]
        self.loader = _loader(dataset, batches, num_workers, self.device, persistent=persistent)
        self.mean255, self.std255 = _norm_tensors(MEAN, STD, self.device)

    def batches(self, *, return_indices: bool = False) -> Iterator:
        for imgs, labels, idx in self.loader:
            x = _to_device(imgs, self.device, self.mean255, self.std255, self.channels_last)
            y = labels.to(self.device, non_blocking=True)
            yield (x, y, idx) if return_indices else (x, y)


def load_tree(root: str, *, with_val: bool = True) -> dict:
    """Scan ``root``: classes, train and val relative paths and labels (the slow part: a directory walk)."""
    check_tree(root)
    classes, train_paths, train_labels = scan_split(str(Path(root) / "train"))
    val_paths, val_labels = None, None
    if with_val:
        _, val_paths, val_labels = scan_split(str(Path(root) / "val"), classes)
    return {
        "classes": classes,
        "train_paths": train_paths,
        "train_labels": train_labels,
        "val_paths": val_paths,
        "val_labels": val_labels,
    }


def unreadable_images(bad_log: str | os.PathLike) -> list[str]:
    """The distinct files listed as unreadable so far (by any worker)."""
    try:
        with open(bad_log) as f:
            return sorted({line.split("\t", 1)[0] for line in f if line.strip()})
    except FileNotFoundError:
        return []
