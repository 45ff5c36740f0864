"""The held-out "minival" split: 2% of the training set, chosen by hash.

The paper tunes on minival and reports on val (never tunes on val). The split must be the same
on every run, machine and library version, so it is not drawn from an RNG: every sample is
ranked by a cryptographic hash (BLAKE2b) of a stable key (its index in an IDX array, its path
relative to the split directory in an image tree) and the ``round(n * fraction)`` smallest
hashes form minival. Adding files to an image tree moves only the new files' membership.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_PERSON = b"rsscale-minival"  # domain separation: these hashes mean "minival rank" only


def _key_bytes(key: str | int) -> bytes:
    if isinstance(key, bool):
        raise TypeError("minival keys must be str or int, not bool")
    if isinstance(key, (int, np.integer)):
        return b"i:" + str(int(key)).encode()
    if isinstance(key, bytes):
        key = key.decode()
    if isinstance(key, str):
        return b"s:" + key.replace("\\", "/").encode("utf-8")
    raise TypeError(f"minival keys must be str or int, got {type(key).__name__}")


def hash_ranks(keys: Sequence[str | int]) -> np.ndarray:
    """Order of ``keys`` by their BLAKE2b-64 digest (ties, practically impossible, by position)."""
    digests = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(_key_bytes(k), digest_size=8, person=_PERSON).digest(), "big")
            for k in keys
        ),
        dtype=np.uint64,
        count=len(keys),
    )
    return np.lexsort((np.arange(len(keys)), digests))


def minival_count(n: int, fraction: float | None) -> int:
    """Number of minival samples, ``round(n * fraction)``, shared by validation and the split
    (None: no minival)."""
    return int(round(n * float(fraction))) if fraction else 0


def split_indices(keys: Sequence[str | int], fraction: float | None = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_idx, minival_idx)``: sorted int64 positions into ``keys``, disjoint, covering all."""
    fraction = fraction or 0.0
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"minival fraction must be in [0, 1), got {fraction}")
    n = len(keys)
    order = hash_ranks(keys)
    k = minival_count(n, fraction)
    minival = np.sort(order[:k]).astype(np.int64)
    train = np.sort(order[k:]).astype(np.int64)
    return train, minival


def take_subset(train_idx: np.ndarray, n: int | None, keys: Sequence[str | int] | None = None) -> np.ndarray:
    """First ``n`` of the remaining training indices (applied after minival removal).

    With ``keys`` (image trees, whose natural order is grouped by class) "first" means smallest
    hash, so a subset still spans all classes; without keys it is dataset order (IDX arrays are
    already shuffled). Either way the subset is deterministic and nested: subset(n) is inside
    subset(m) for n <= m.
    """
    if n is None:
        return train_idx
    if n > len(train_idx):
        raise ValueError(
            f"data.train_subset={n} exceeds the {len(train_idx)} training samples left after minival"
        )
    if keys is None:
        return train_idx[:n]
    order = hash_ranks([keys[i] for i in train_idx])
    return np.sort(train_idx[order[:n]])
