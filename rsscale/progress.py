"""A cell's step-level progress in cells/<id>/progress.json, so a driver (local or SLURM) can show it.

Rank 0 rewrites the file atomically at most once per `every_s` seconds (and at start and end), so
the cost is one small file write per second whatever the step rate. A resumed run starts from the
checkpointed step: the file never goes back to step 0 after a kill. Readers get None for a cell
that has not started or whose file is unreadable; the record stays the source of truth for results.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from rsscale.io import atomic_write_json

PROGRESS_VERSION = 1


class ProgressFile:
    """Writes epoch/step/steps_total/img_s/eta_s/updated_at; `tick` is cheap between writes."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        steps_total: int,
        epochs: int,
        images_per_step: int,
        enabled: bool = True,
        every_s: float = 1.0,
    ):
        self.path = Path(path)
        self.steps_total, self.epochs = int(steps_total), int(epochs)
        self.images_per_step = int(images_per_step)
        self.enabled, self.every_s = enabled, float(every_s)
        self.t0 = time.monotonic()
        self.step0: int | None = None  # the first step this process saw (after a resume: the checkpoint's)
        self.last_t = float("-inf")
        self.last_step = 0
        self.img_s: float | None = None
        self.resumed_from = 0
        self.rate_from: tuple[float, int] | None = None

    def start(self, step: int, epoch: int) -> None:
        """The position the run (re)starts at: written at once, before the first step."""
        self.step0, self.resumed_from, self.last_step = step, step, step
        self.t0 = self.last_t = time.monotonic()
        self._write(step, epoch, "starting" if step == 0 else "resumed")

    def tick(self, step: int, epoch: int) -> None:
        """After an optimiser step: rewrite the file if `every_s` passed since the last write."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last_t < self.every_s:
            return
        if self.step0 is None:
            self.step0, self.last_step, self.t0 = step, step, now
        if self.rate_from is None:  # the rate counts from the first step: start-up is not training
            self.rate_from = (now, step)
        elif step > self.rate_from[1]:
            self.img_s = (step - self.rate_from[1]) * self.images_per_step / (now - self.rate_from[0])
        self.last_t, self.last_step = now, step
        self._write(step, epoch, "training")

    def phase(self, step: int, epoch: int, phase: str) -> None:
        """A phase the steps do not show (`evaluating`, `completed`): written at once."""
        self._write(step, epoch, phase)

    def eta_s(self, step: int) -> float | None:
        done = step - (self.step0 or 0)
        if done <= 0:
            return None
        return (self.steps_total - step) * (time.monotonic() - self.t0) / done

    def _write(self, step: int, epoch: int, phase: str) -> None:
        if not self.enabled:
            return
        eta = 0.0 if phase == "completed" else self.eta_s(step)
        atomic_write_json(
            self.path,
            {
                "version": PROGRESS_VERSION,
                "phase": phase,
                "epoch": epoch,
                "epochs": self.epochs,
                "step": step,
                "steps_total": self.steps_total,
                "resumed_from": self.resumed_from,
                "img_s": self.img_s,
                "eta_s": eta,
                "elapsed_s": time.monotonic() - self.t0,  # since this process (re)started the run
                "updated_at": time.time(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
            fsync=False,  # progress is advisory: atomic is enough, durability is the checkpoint's job
        )


def read_progress(path: str | os.PathLike) -> dict[str, Any] | None:
    """The progress a cell last wrote, or None (not started, or a file from an unknown version)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != PROGRESS_VERSION:
        return None
    return data
