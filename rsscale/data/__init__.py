"""Data layer: datasets, the minival split and deterministic, resumable batch streams.

Entry points: :func:`build_data` (config -> :class:`DataBundle` of streams) and
:func:`validate_data_cfg` (cheap pre-flight check used before a sweep submits anything).
"""

from .build import DataBundle, build_data
from .config import DataConfig, DataConfigError, DataNotFoundError, SyntheticDataConfig
from .idx import read_idx, write_idx
from .minival import split_indices
from .registry import DATASETS, check_batch_fits, data_config, train_samples, validate_data_cfg
from .streams import EvalStream, TrainStream

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataConfig",
    "DataConfigError",
    "DataNotFoundError",
    "EvalStream",
    "SyntheticDataConfig",
    "TrainStream",
    "build_data",
    "check_batch_fits",
    "data_config",
    "read_idx",
    "split_indices",
    "train_samples",
    "validate_data_cfg",
    "write_idx",
]
