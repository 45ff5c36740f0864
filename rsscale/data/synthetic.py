"""Synthetic RGB images with a learnable signal, for smoke tests and benchmarks without data.

Each class has a smooth random colour pattern; a sample is its class pattern plus pixel noise,
so a small model reaches high accuracy within an epoch or two (enough to test that a training
loop learns), and everything is a pure function of the seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .streams import cpu_generator

IN_CHANS, NATIVE_RES = 3, 32
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
DATA_SEED = 0  # the images do not change with the run seed: same data, different order


def class_patterns(num_classes: int) -> torch.Tensor:
    """[K, 3, 32, 32] float patterns in about [-1, 1]: 4x4 random colours upsampled."""
    g = cpu_generator(DATA_SEED, "synthetic-patterns", num_classes)
    coarse = torch.randn(num_classes, IN_CHANS, 4, 4, generator=g)
    return F.interpolate(coarse, size=(NATIVE_RES, NATIVE_RES), mode="bilinear", align_corners=False).clamp(
        -2, 2
    )


def make_split(split: str, n: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images [n,3,32,32] and int64 labels for ``split`` ('train' or 'val'), on the CPU."""
    g = cpu_generator(DATA_SEED, "synthetic", split, n, num_classes)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    noise = torch.randn(n, IN_CHANS, NATIVE_RES, NATIVE_RES, generator=g)
    x = 128.0 + 40.0 * class_patterns(num_classes)[labels] + 25.0 * noise
    return x.round().clamp(0, 255).to(torch.uint8), labels
