"""Data layer: datasets, the minival split and deterministic, resumable batch streams.

Entry points: :func:`build_data` (config -> :class:`DataBundle` of streams) and
:func:`validate_data_cfg` (cheap pre-flight check used before a sweep submits anything).
"""

from .build import DataBundle, build_data
from .config import DATASETS, DataConfigError, DataNotFoundError, validate_data_cfg
from .idx import read_idx, write_idx
from .minival import split_indices
from .streams import EvalStream, TrainStream

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataConfigError",
    "DataNotFoundError",
    "EvalStream",
    "TrainStream",
    "build_data",
    "read_idx",
    "split_indices",
    "validate_data_cfg",
    "write_idx",
]
