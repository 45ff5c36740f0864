"""ImageFolder JPEG trees for the ImageNet-path tests: root/{train,val}/<class>/*.JPEG with random
content and each class's colour channel set, so labels are visibly tied to content."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def write_class_tree(
    root: Path,
    classes: Sequence[str],
    per_split: Sequence[tuple[str, int]],
    *,
    seed: int,
    sizes: tuple[int, int],
    colour: int,
    quality: int,
    name: str = "img_{i}",
) -> np.random.Generator:
    """Write the tree; returns the generator so a caller can draw its extra odd files from it."""
    rng = np.random.default_rng(seed)
    for split, n in per_split:
        for k, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(*sizes, 2)
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                arr[..., k] = colour
                Image.fromarray(arr).save(root / split / c / f"{name.format(i=i)}.JPEG", quality=quality)
    return rng
