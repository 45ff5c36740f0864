"""EfficientNet's compound-scaling rule for resolution: the reference the resolution verdict
is read against (and its figure draws)."""

from __future__ import annotations

import math

import numpy as np

EFFICIENTNET_EXPONENT = math.log(1.15) / math.log(2.0)
# Released EfficientNet B0-B7 (width, depth, resolution) coefficients.
EFFICIENTNET_TABLE = [
    ("B0", 1.0, 1.0, 224),
    ("B1", 1.0, 1.1, 240),
    ("B2", 1.1, 1.2, 260),
    ("B3", 1.2, 1.4, 300),
    ("B4", 1.4, 1.8, 380),
    ("B5", 1.6, 2.2, 456),
    ("B6", 1.8, 2.6, 528),
    ("B7", 2.0, 3.1, 600),
]


def efficientnet_table_exponent() -> float:
    """Slope of log(resolution) on log(FLOPs proxy d*w^2*r^2) over the released B0-B7."""
    C = np.array([d * w * w * r * r for _, w, d, r in EFFICIENTNET_TABLE], float)
    r = np.array([row[3] for row in EFFICIENTNET_TABLE], float)
    return float(np.polyfit(np.log(C), np.log(r), 1)[0])
