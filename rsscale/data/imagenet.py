"""ImageNet (or any ImageFolder-style tree): ``root/train/<class>/*.JPEG``, ``root/val/<class>/*.JPEG``.

Decoding runs in DataLoader workers and yields uint8 crops; conversion to float and
normalisation happen on the device after a pinned, non-blocking copy (4x less PCIe traffic than
float). Augmentation is exactly resumable: the sampler hands each worker ``(epoch, index)``
keys and the dataset reseeds a forked torch RNG from ``(seed, epoch, index)`` around the
torchvision v2 pipeline, so a sample's crop does not depend on worker count, batch position or
what was drawn before.

``decode`` on CUDA (``data.decode: auto|cuda``): the workers only read each file's bytes and the
training process decodes a whole batch with nvjpeg (``torchvision.io.decode_jpeg`` on a list),
then crops, flips, RandAugments and normalises on the GPU. The random parameters come from the
same per-sample seeded CPU RNG as in the workers, so the crops and flips are the same; only the
pixel arithmetic runs elsewhere (on CPU the batched path is bit-identical to the worker path,
which the tests check). Files nvjpeg cannot decode (PNG, CMYK, broken) fall back to PIL one by
one, and unreadable ones are listed and substituted exactly as in the worker path.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
# ILSVRC-2012's published counts: the registry's facts for estimates made before any scan. The tree
# at data.root (which may be a subset or another image tree) is counted when build_data lists it.
TRAIN_SIZE, VAL_SIZE, NUM_CLASSES = 1_281_167, 50_000, 1000
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
CROP_FRACTION = 0.875
RANDAUGMENT_FILL = 128  # grey, as the released TF RandAugment fills rotated/translated borders


def check_tree(root: str | None, max_unreadable_fraction: float = 0.0) -> None:
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
        _check_sample(os.path.join(root, split), max_unreadable_fraction)


SAMPLE_FILES = 32  # files the pre-launch check may try in the first class directory


def _check_sample(split_dir: str, max_unreadable_fraction: float) -> None:
    """The first class directory with an image holds a decodable one: an empty tree or one that is
    not images fails before launch (one listing of one class directory; not a full scan). Where
    unreadable images are allowed (data.max_unreadable_fraction > 0), a bad first file is skipped:
    up to SAMPLE_FILES are tried; the share of the whole tree is counted while training."""
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        images = sorted(f.name for f in os.scandir(entry.path) if f.name.lower().endswith(EXTENSIONS))
        if not images:
            continue
        tries = images[:SAMPLE_FILES] if max_unreadable_fraction > 0 else images[:1]
        first_error = None
        for name in tries:
            path = os.path.join(entry.path, name)
            try:
                decode_rgb(path)
                return
            except Exception as e:  # noqa: BLE001 - any decoder error: say which file
                first_error = first_error or f"{path} cannot be decoded ({type(e).__name__}: {e})"
        more = f" (nor can the next {len(tries) - 1} files there)" if len(tries) > 1 else ""
        raise DataConfigError(f"data.root: {first_error}{more}")
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
    """uint8 [3,H,W] (a view of HWC memory): libjpeg-turbo via torchvision for baseline/progressive
    grey or YCbCr JPEGs (bit-identical to PIL on them and about 1.3x faster), PIL for everything
    else (CMYK/YCCK, PNG-as-JPEG files, other formats)."""
    data = read_bytes(path)
    if jpeg_components(data) in (1, 3):
        (img,) = decode_jpegs([data], "cpu")
        if img is not None:
            return img  # HWC in memory: the v2 transforms run ~1.4x faster on it, with equal pixels
    return decode_pil(path)


def decode_pil(path: str) -> torch.Tensor:
    """uint8 [3,H,W] via PIL (handles CMYK, PNG-as-JPEG files and the other formats), HWC in memory."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.array(im.convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_components(data: torch.Tensor) -> int | None:
    """Colour components of a JPEG (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK) from its frame header; None
    if ``data`` is not a JPEG (no SOI marker, or no frame header before the scan)."""
    buf = data.numpy()
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    p = 2
    while p + 3 < n:
        if buf[p] != 0xFF:
            return None
        marker = int(buf[p + 1])
        if marker == 0xFF:  # fill byte
            p += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            p += 2
            continue
        if marker in _SOF:
            return int(buf[p + 9]) if p + 9 < n else None
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        p += 2 + (int(buf[p + 2]) << 8 | int(buf[p + 3]))
    return None


def read_bytes(path: str) -> torch.Tensor:
    """The file's bytes as a 1-D uint8 tensor (empty if it cannot be read: the decode step then
    lists it as unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return torch.empty(0, dtype=torch.uint8)
    if not data:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_jpegs(datas: Sequence[torch.Tensor], device: torch.device | str) -> list[torch.Tensor | None]:
    """RGB uint8 [3,H,W] on ``device`` for each JPEG byte tensor (CPU tensors), decoded as one batch
    (nvjpeg on CUDA, libjpeg-turbo on CPU); None for what is not a grey or YCbCr JPEG (PNG,
    CMYK/YCCK, whose conversion PIL owns) or fails to decode: the caller decodes those with PIL."""
    from torchvision.io import ImageReadMode, decode_jpeg

    device = torch.device(device)
    ok = [jpeg_components(d) in (1, 3) for d in datas]  # CMYK/YCCK and non-JPEGs: PIL's conversions
    todo = [d for d, k in zip(datas, ok) if k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io decoding, since 0.29
        try:
            done = list(decode_jpeg(todo, mode=ImageReadMode.RGB, device=device)) if todo else []
        except Exception:  # noqa: BLE001 - one bad image fails the batch: retry one by one
            done = []
            for d in todo:
                try:
                    done.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
                except Exception:  # noqa: BLE001 - any decoder error: PIL fallback
                    done.append(None)
    it = iter(done)
    return [next(it) if k else None for k in ok]


def collate_raw(batch):
    """Collate ``(bytes, label, index)`` samples: byte tensors stay a list (their lengths differ)."""
    datas, labels, index = zip(*batch)
    return list(datas), torch.tensor(labels, dtype=torch.int64), torch.tensor(index, dtype=torch.int64)


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
    """Indexed by ``(epoch, index)``; returns ``(uint8 [3,res,res], label, index)``.

    With ``raw`` it returns ``(file bytes, label, index)`` instead and :meth:`decode_augment` does
    the rest on a device, a batch at a time (``collate_raw`` batches such samples).
    """

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
        raw: bool = False,
    ):
        self.split_dir, self.paths, self.labels = split_dir, paths, labels
        self.transform, self.seed, self.random = transform, int(seed), random
        self.bad_log, self.raw = bad_log, bool(raw)

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
                list_unreadable(self.bad_log, path, f"{type(e).__name__}: {str(e)[:200]}")
        first = self.paths[index].decode()
        raise DataConfigError(f"data.root: 64 consecutive unreadable images from {first}")

    def __len__(self) -> int:
        return len(self.paths)

    def _augment(self, img: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        """The transform, its random draws from the CPU RNG seeded by ``(seed, epoch, index)``
        (the caller's RNG untouched); the image may be on any device."""
        if not self.random:
            return self.transform(img)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derive_seed(self.seed, "imagenet", epoch, index))
            return self.transform(img)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if self.raw:
            path = os.path.join(self.split_dir, self.paths[index].decode())
            return read_bytes(path), int(self.labels[index]), int(index)
        # Workers already run single-threaded; with num_workers=0 we are in the main process.
        with single_thread(get_worker_info() is None):
            img, src = self._decode(index)
            img = self._augment(img, epoch, index)
        return img, int(self.labels[src]), int(index)

    def decode_augment(
        self, datas: Sequence[torch.Tensor], index: Sequence[int], epoch: int, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of file bytes (from ``raw`` samples ``index``) -> ``(uint8 [B,3,res,res],
        labels [B])`` on ``device``: one batched JPEG decode there, then the same per-sample
        transform with the same seeds as ``__getitem__`` (on CPU the result is bit-identical)."""
        device = torch.device(device)
        imgs = decode_jpegs(datas, device)
        out, labels = [], []
        with single_thread(device.type == "cpu"):
            for img, i in zip(imgs, index):
                i, src = int(i), int(i)
                if img is None:  # not a JPEG nvjpeg/libjpeg reads: PIL, or listed and substituted
                    img, src = self._decode(i)
                    img = img.to(device)
                out.append(self._augment(img, epoch, i))
                labels.append(int(self.labels[src]))
        return torch.stack(out), torch.tensor(labels, dtype=torch.int64, device=device)


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
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"persistent_workers": persistent, "prefetch_factor": 4}
    if getattr(dataset, "raw", False):  # file bytes: a list per batch, read by the decoder, not copied
        kwargs["collate_fn"] = collate_raw
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda" and not getattr(dataset, "raw", False),
        **kwargs,
    )


def _check_decode_on(dataset, decode_on) -> torch.device | None:
    if decode_on is None:
        if dataset.raw:
            raise ValueError("a raw (bytes) ImageTreeDataset needs decode_on, the device that decodes")
        return None
    if not dataset.raw:
        raise ValueError("decode_on needs an ImageTreeDataset built with raw=True")
    return torch.device(decode_on)


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
        decode_on: torch.device | str | None = None,
    ):
        check_distributed(batch_size, rank, world_size)
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self.device, self.channels_last = torch.device(device), channels_last
        self.dataset, self.decode_on = dataset, _check_decode_on(dataset, decode_on)
        self.num_samples = len(train_idx)
        self.seed = int(seed)
        self.sampler = EpochBatchSampler(train_idx, self.batch_size, self.rank, self.world_size, self.seed)
        self._train_idx_t = self.sampler.train_idx
        self.steps_per_epoch = self.sampler.steps
        self.loader = _loader(dataset, self.sampler, num_workers, self.device, persistent=True)
        self.mean255, self.std255 = _norm_tensors(MEAN, STD, self.device)

    def _iter(self, epoch: int, start_step: int, return_indices: bool) -> Iterator:
        if start_step == self.steps_per_epoch:
            return
        self.sampler.set_epoch(epoch, start_step)
        for imgs, labels, idx in self.loader:
            if self.decode_on is not None:
                imgs, labels = self.dataset.decode_augment(imgs, idx.tolist(), epoch, self.decode_on)
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
        decode_on: torch.device | str | None = None,
    ):
        check_distributed(batch_size, rank, world_size)
        self.dataset, self.decode_on = dataset, _check_decode_on(dataset, decode_on)
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
            if self.decode_on is not None:
                imgs, labels = self.dataset.decode_augment(imgs, idx.tolist(), 0, self.decode_on)
            x = _to_device(imgs, self.device, self.mean255, self.std255, self.channels_last)
            y = labels.to(self.device, non_blocking=True)
            yield (x, y, idx) if return_indices else (x, y)


def load_tree(root: str, *, with_val: bool = True, max_unreadable_fraction: float = 0.0) -> dict:
    """Scan ``root``: classes, train and val relative paths and labels (the slow part: a directory walk)."""
    check_tree(root, max_unreadable_fraction)
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


def list_unreadable(bad_log: str | os.PathLike, path: str, why: str) -> None:
    """Add `path` to the unreadable-images list once: every worker, epoch and rank meets the same
    file, so the check and the append hold the file's lock together."""
    import fcntl

    with open(bad_log, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        if any(line.split("\t", 1)[0] == path for line in f):
            return
        f.write(f"{path}\t{why}\n")


def unreadable_images(bad_log: str | os.PathLike) -> list[str]:
    """The distinct files listed as unreadable so far (by any worker)."""
    try:
        with open(bad_log) as f:
            return sorted({line.split("\t", 1)[0] for line in f if line.strip()})
    except FileNotFoundError:
        return []
