"""Idle cores go to the cells still running (local CPU sweeps).

At the tail of a local sweep fewer cells than cores remain; without help the last cell runs on
one thread while the other cores idle (3.5 of 18 minutes on the old demo). The launcher writes
each running cell's share of the cores to ``cells/<id>/threads.json``; the cell's train loop
reads it between optimiser steps (``ThreadFollower``, at most every `every_s` seconds) and calls
``torch.set_num_threads`` in the training thread, which is where OpenMP takes its team size from.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from rsscale.io import atomic_write_json, read_json
from rsscale.launch.resources import visible_gpus
from rsscale.layout import CellLayout, SweepLayout

log = logging.getLogger("rsscale.train")


def core_shares(running: Sequence[str], cores: int, base_threads: int, queued: int) -> dict[str, int]:
    """Threads per running cell: the base while cells wait to start, else the cores split evenly."""
    if queued or not running:
        return {cid: base_threads for cid in running}
    share, extra = divmod(max(cores, len(running)), len(running))
    return {cid: share + (1 if i < extra else 0) for i, cid in enumerate(running)}


def write_shares(sweep_dir: str | os.PathLike, shares: dict[str, int], written: dict[str, int]) -> None:
    """Write the shares that changed since the last call (`written` is updated in place)."""
    layout = SweepLayout(sweep_dir)
    for cid, n in shares.items():
        if written.get(cid) != n:
            try:
                atomic_write_json(layout.cell(cid).threads, {"threads": n}, fsync=False)
            except OSError as e:  # advisory: the cell keeps its threads; its own run reports the storage
                log.warning("cannot write %s: %s", layout.cell(cid).threads, e)
            written[cid] = n


class CoreSharer:
    """The launcher's side: on CPU-only machines with automatic threads, keep the shares written."""

    def __init__(self, sweep_dir, cluster, base_threads: int, tasks_per_cell: int):
        self.sweep_dir = sweep_dir
        self.base = base_threads
        self.enabled = (
            cluster.get("cpus_per_cell", "auto") == "auto" and tasks_per_cell == 1 and not visible_gpus()
        )
        self.written: dict[str, int] = {}

    def update(self, running: Sequence[str], queued: int) -> None:
        if self.enabled:
            write_shares(
                self.sweep_dir, core_shares(running, os.cpu_count() or 1, self.base, queued), self.written
            )


class ThreadFollower:
    """`on_step` hook of the train loop: follow the launcher's thread share for this cell."""

    def __init__(self, cell_dir: str | os.PathLike, every_s: float = 2.0):
        self.path = CellLayout(cell_dir).threads
        self.every_s = every_s
        self._next = 0.0
        self._mtime: float | None = None

    def __call__(self, step: int) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            n = int(read_json(self.path)["threads"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        self._mtime = mtime
        import torch

        if n >= 1 and n != torch.get_num_threads():
            log.info(
                "threads %d -> %d at step %d (cores freed by finished cells)",
                torch.get_num_threads(),
                n,
                step,
            )
            torch.set_num_threads(n)
