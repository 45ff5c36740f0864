"""Checkpoints that make a resumed run bit-identical to an uninterrupted one.

Besides model/EMA/optimiser they hold the data position (epoch, micro-step) and every RNG state;
the LR is a pure function of the step, so there is no scheduler state to lose.
`Checkpointer` is the run's one owner of them: when to save (every N epochs, steps or minutes),
the save, the resume, and the preemption hand-over (torchtitan's CheckpointManager decides the
same way for itself whether a step saves).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rsscale.config import RuntimeConfig
from rsscale.io import atomic_torch_save
from rsscale.layout import CHECKPOINT_NAME
from rsscale.layout import PREVIOUS_CHECKPOINT_NAME as PREVIOUS_NAME
from rsscale.train import distributed as D

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


class PreemptRequested(Exception):
    """Raised at a step boundary after the preemption signal, once the checkpoint is on disk."""


class PreemptFlag:
    """Defers the preemption signal (USR2) to the next step boundary.

    The handler only sets a flag; the checkpointer then writes a consistent checkpoint and hands
    over to the previous handler (submitit's, which requeues the job), or raises PreemptRequested.
    `stop_signals` (SIGTERM in a local cell) do the same but never requeue: the cell stops.
    """

    def __init__(self, signum: int = signal.SIGUSR2, stop_signals: tuple[int, ...] = ()):
        self.signum = signum
        self.stop_signals = tuple(stop_signals)
        self.requested = False
        self.received: int | None = None
        self.previous: Any = None  # the handler before ours (a callable, SIG_DFL/SIG_IGN, or None)
        self.others: dict[int, Any] = {}
        self.frame = None

    def __enter__(self):
        try:
            self.previous = signal.signal(self.signum, self._handler)
            for s in self.stop_signals:
                self.others[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def _handler(self, signum, frame):
        self.requested = True
        self.received = self.received or signum
        self.frame = frame

    def __exit__(self, *exc):
        if self.previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(self.signum, self.previous)
                for s, h in self.others.items():
                    signal.signal(s, h)
        return False

    def hand_over(self) -> None:
        prev = self.previous
        self.__exit__()
        self.previous = None
        if callable(prev) and self.received in (None, self.signum):
            prev(self.signum, self.frame)  # submitit: checkpoint() + requeue + sys.exit
        raise PreemptRequested("preemption signal received; checkpoint saved")


class Stateful(Protocol):
    """A part of the run whose state goes into the checkpoint (torchtitan's `Stateful`).

    The checkpoint is one flat dict: each part writes and reads its own keys of it.
    """

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Checkpointer:
    """Saves, resumes and hands over on preemption; decides itself when a save is due.

    Cadence (runtime.checkpoint_every_*): after every `epochs`-th epoch and the last one; and,
    inside an epoch, every `steps` optimiser steps or once `minutes` have passed since the last
    save. Every decision is OR-ed across ranks (`D.any_across_ranks`), so all ranks save (and
    enter the barrier) at the same step. `clock` is injectable for tests.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        runtime: RuntimeConfig,
        *,
        states: Sequence[Stateful] = (),
        is_main: bool = True,
        clock: Callable[[], float] = time.monotonic,
        signum: int = signal.SIGUSR2,
        stop_signals: tuple[int, ...] = (),
    ):
        self.run_dir = Path(run_dir)
        self.every_epochs = int(runtime.checkpoint_every_epochs or 1)
        self.every_steps = int(runtime.checkpoint_every_steps or 0)
        self.every_minutes = float(runtime.checkpoint_every_minutes or 0)
        self.states = tuple(states)
        self.is_main = is_main
        self.clock = clock
        self.last_save = clock()
        self.signals = (signum, tuple(stop_signals))
        self.preempt = PreemptFlag(*self.signals)  # installed by `watch_preemption`
        self.on_preempt: Callable[[], object] | None = None

    # -- resume and save -------------------------------------------------------------------------
    def resume(self, map_location="cpu") -> bool:
        """Load the newest readable checkpoint into every state and the RNGs; False if none."""
        ckpt = load_checkpoint(self.run_dir, map_location=map_location)
        if ckpt is None:
            return False
        for s in self.states:
            s.load_state_dict(ckpt)
        set_rng_state(ckpt["rng"])
        return True

    def save(self) -> None:
        """Every rank collects the state (it may hold collectives); the main rank writes it."""
        state: dict[str, Any] = {}
        for s in self.states:
            state.update(s.state_dict())
        if self.is_main:
            save_checkpoint(self.run_dir, state)
        D.barrier()
        self.last_save = self.clock()

    # -- cadence -----------------------------------------------------------------------------------
    def step_due(self, step: int) -> bool:
        by_steps = bool(self.every_steps) and step % self.every_steps == 0
        by_time = bool(self.every_minutes) and self.clock() - self.last_save > 60 * self.every_minutes
        return by_steps or by_time

    def epoch_due(self, epoch: int, last_epoch: int) -> bool:
        return epoch % self.every_epochs == 0 or epoch == last_epoch

    def after_step(self, step: int) -> None:
        """At a step boundary inside an epoch: save when due or preempted; then hand over."""
        preempted, due = D.any_across_ranks(self.preempt.requested, self.step_due(step))
        if preempted or due:
            self.save()
        if preempted:
            self._hand_over()

    def after_epoch(self, epoch: int, last_epoch: int) -> None:
        if self.epoch_due(epoch, last_epoch):
            self.save()

    def after_training(self) -> None:
        """A signal that came after the last step's check (during the final epoch's evaluation or
        checkpoint) would be dropped with the handler when the watch ends: act on it."""
        (preempted,) = D.any_across_ranks(self.preempt.requested)
        if preempted:
            self.save()
            self._hand_over()

    # -- preemption --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def watch_preemption(self, on_preempt: Callable[[], object] | None = None):
        """Catch the preemption signal while training; `on_preempt` runs after the checkpoint and
        before the hand-over (the record must say `preempted` before submitit exits)."""
        self.on_preempt = on_preempt
        self.last_save = self.clock()  # the time cadence counts from the start of training
        self.preempt = PreemptFlag(*self.signals)
        with self.preempt:
            yield self

    def _hand_over(self) -> None:
        if self.on_preempt is not None:
            self.on_preempt()
        self.preempt.hand_over()
