"""Fashion-MNIST, the embedded default: 60k/10k 28x28 grey images, 10 classes.

Read straight from the IDX files (``data.root``, else the Debian package
``dataset-fashion-mnist`` under /usr/share/datasets, else a torchvision download when
``data.download`` is true) and kept whole, as uint8, on the training device: 47 MB, so every
augmentation runs on the GPU and no DataLoader worker is needed.
"""

from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path

import numpy as np
import torch

from .config import DataNotFoundError
from .idx import read_idx

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
TRAIN_SIZE, VAL_SIZE, NUM_CLASSES, NATIVE_RES = 60000, 10000, 10, 28
IN_CHANS = 1
# Per-channel statistics of the 60k training images (pixel values scaled to [0, 1]).
MEAN, STD = (0.2860,), (0.3530,)
# Random crop with 2 px zero padding at the native 28 px (~7%; 4 px is the CIFAR-32 recipe
# and cuts into these centred objects), then horizontal flip.
PAD = 2

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
# Layouts seen in the wild under a root: flat, torchvision's, and common folder names.
_SUBDIRS = ("", "FashionMNIST/raw", "fashion-mnist", "fashion_mnist")


def default_download_dir() -> Path:
    """Where ``data.download`` puts the files when ``data.root`` is null."""
    base = os.environ.get("RSSCALE_DATA_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rsscale", "data"
    )
    return Path(base)


def _files_in(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FILES.items():
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            return None
    return found


def find_fashion_mnist(root: str | None) -> dict[str, Path] | None:
    """Paths of the four IDX files, searching ``root`` if given, else the system dir and the download dir."""
    bases = [Path(root)] if root is not None else [Path(SYSTEM_DIR), default_download_dir()]
    for base in bases:
        for sub in _SUBDIRS:
            found = _files_in(base / sub if sub else base)
            if found is not None:
                return found
    return None


def not_found_error(root: str | None) -> DataNotFoundError:
    where = f"data.root={root}" if root is not None else f"{SYSTEM_DIR} or {default_download_dir()}"
    return DataNotFoundError(
        f"Fashion-MNIST IDX files ({', '.join(FILES.values())}, optionally .gz) not found in {where}: "
        "apt-get install dataset-fashion-mnist, or set data.root=DIR with the IDX files, "
        "or data.download=true on a machine with internet"
    )


def _download(root: str | None) -> dict[str, Path]:
    """torchvision download into ``root`` or the cache dir, under a file lock so that ranks
    or array tasks sharing a file system do not write the same files at once."""
    from torchvision.datasets import FashionMNIST

    target = Path(root) if root is not None else default_download_dir()
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".rsscale-download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_fashion_mnist(str(target)) is None:
            FashionMNIST(root=str(target), train=True, download=True)
            FashionMNIST(root=str(target), train=False, download=True)
    found = find_fashion_mnist(str(target))
    if found is None:  # pragma: no cover - torchvision changed its layout
        raise not_found_error(str(target))
    return found


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    arr = read_idx(path)
    arr.setflags(write=False)
    return arr


def _read(path: Path) -> np.ndarray:
    st = path.stat()
    return _read_cached(str(path), st.st_mtime_ns, st.st_size)


def load_arrays(root: str | None, download: bool) -> dict[str, np.ndarray]:
    """The four arrays (images [N,28,28] uint8, labels [N] uint8), checked for shape and range.

    N is not fixed, so a root holding MNIST or a small test copy in the same format also works.
    """
    found = find_fashion_mnist(root)
    if found is None:
        if not download:
            raise not_found_error(root)
        found = _download(root)
    arrays = {key: _read(path) for key, path in found.items()}
    for split in ("train", "val"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ok = imgs.dtype == np.uint8 and imgs.shape[1:] == (NATIVE_RES, NATIVE_RES) and labels.ndim == 1
        if not ok or len(labels) != len(imgs):
            raise ValueError(
                f"{found[f'{split}_images']}: expected N images of 28x28 uint8 and N labels, "
                f"got {imgs.shape} {imgs.dtype} and {labels.shape}"
            )
        if len(labels) and labels.max() >= NUM_CLASSES:
            raise ValueError(f"{found[f'{split}_labels']}: label {labels.max()} outside 0..9")
    return arrays


def to_device(
    images: np.ndarray, labels: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N,1,28,28] images and int64 labels on ``device``."""
    x = torch.from_numpy(np.array(images, copy=True)).unsqueeze(1).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return x, y
