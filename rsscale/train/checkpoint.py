"""Checkpoints that make a resumed run bit-identical to an uninterrupted one.

Besides model/EMA/optimiser they hold the data position (epoch, micro-step) and every RNG state;
the LR is a pure function of the step, so there is no scheduler state to lose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsscale.io import atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
log = logging.getLogger("rsscale.train")


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
    """Write the newest checkpoint; the one before it stays as checkpoint.prev.pt (a fallback if the
    newest is ever unreadable). checkpoint.pt is never absent while it is replaced."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if path.exists():
        prev, tmp = path.with_name(PREVIOUS_NAME), path.with_name(f".{PREVIOUS_NAME}.link")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.link(path, tmp)
        os.replace(tmp, prev)
    atomic_torch_save(path, {**state, "rng": rng_state()})
    return path


def load_checkpoint(run_dir: str | os.PathLike, map_location="cpu") -> dict[str, Any] | None:
    """The newest readable checkpoint of a run directory, or None (the run then starts over).

    An unreadable checkpoint.pt (a disk error, a truncated copy) falls back to checkpoint.prev.pt;
    both are logged, so that the record and train.log say why a run went back or restarted.
    """
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        path = Path(run_dir) / name
        if not path.exists():
            continue
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not an rsscale checkpoint")
            if name != CHECKPOINT_NAME:
                log.warning("resuming from the previous checkpoint %s", path)
            return state
        except Exception as e:  # noqa: BLE001 - any unreadable file: try the older one, then restart
            log.warning("unreadable checkpoint %s (%s: %s); falling back", path, type(e).__name__, e)
    if any((Path(run_dir) / n).exists() for n in (CHECKPOINT_NAME, PREVIOUS_NAME)):
        log.warning("no readable checkpoint in %s: the run restarts from step 0", run_dir)
    return None
