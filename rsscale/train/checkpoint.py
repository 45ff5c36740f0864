"""Checkpoints that make a resumed run bit-identical to an uninterrupted one.

Besides model/EMA/optimiser they hold the data position (epoch, micro-step) and every RNG state;
the LR is a pure function of the step, so there is no scheduler state to lose.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsscale.io import atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / CHECKPOINT_NAME
    atomic_torch_save(path, {**state, "rng": rng_state()})
    return path


def load_checkpoint(run_dir: str | os.PathLike, map_location="cpu") -> dict[str, Any] | None:
    """The newest checkpoint of a run directory, or None. A half-written temp file is ignored."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)
