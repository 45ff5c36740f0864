"""The sweep-directory layout: every file name under SWEEP_DIR (and a tuning study's STUDY_DIR) in one place.

```
SWEEP_DIR/manifest.json                 driver-owned durable state (rsscale/launch/manifest.py)
SWEEP_DIR/.driver.lock                  flock held by the one driver of the sweep
SWEEP_DIR/cells/<cell_id>/config.json   the resolved cell config (rewritten on every launch)
SWEEP_DIR/cells/<cell_id>/record.json   the run record, source of truth for results
SWEEP_DIR/cells/<cell_id>/checkpoint.pt newest checkpoint; checkpoint.prev.pt the one before
SWEEP_DIR/cells/<cell_id>/attempts.jsonl one line per start of the cell
SWEEP_DIR/cells/<cell_id>/threads.json  local launcher -> running cell: its share of idle cores
SWEEP_DIR/cells/<cell_id>/train.log     the cell's log lines
SWEEP_DIR/cells/<cell_id>/progress.json rank 0's step-level progress, rewritten <= once a second
SWEEP_DIR/logs/<job id>/                submitit's job folders (pickles, stdout/stderr)
SWEEP_DIR/report/                       analysis output
SWEEP_DIR/cache/inductor/               torch.compile caches shared by the sweep's cells
```
A study directory reuses the same `cells/`, `logs/` and `report/` and adds its own files
(:class:`StudyLayout`). Modules take paths from here, never spell the names themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
DRIVER_LOCK_NAME = ".driver.lock"
CELLS_DIR = "cells"
LOGS_DIR = "logs"
REPORT_DIR = "report"
CACHE_DIR = "cache"

CONFIG_NAME = "config.json"
RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
ATTEMPTS_NAME = "attempts.jsonl"
THREADS_NAME = "threads.json"
TRAIN_LOG_NAME = "train.log"
PROGRESS_NAME = "progress.json"
UNREADABLE_NAME = "unreadable_images.txt"  # image trees: the undecodable files a run skipped

STUDY_META_NAME = "study.json"
JOURNAL_NAME = "journal.log"
WORKERS_NAME = "workers.jsonl"
JOBS_NAME = "jobs.jsonl"
BEST_NAME = "best.json"


class _Entry:
    """A path attribute of a layout: `parts` joined to the layout's directory (`dir` or `root`)."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Path:
        if obj is None:
            return self  # type: ignore[return-value]  # the descriptor itself, on the class
        return obj.base.joinpath(*self.parts)


@dataclass(frozen=True)
class _Layout:
    base: Path  # the directory the entries are in

    def __init__(self, base: str | os.PathLike):
        object.__setattr__(self, "base", Path(base))


class CellLayout(_Layout):
    """The files of one cell (a sweep cell or a tuning trial chain); `dir` is cells/<cell_id>."""

    dir = _Entry()
    config = _Entry(CONFIG_NAME)
    record = _Entry(RECORD_NAME)
    checkpoint = _Entry(CHECKPOINT_NAME)
    checkpoint_prev = _Entry(PREVIOUS_CHECKPOINT_NAME)
    attempts = _Entry(ATTEMPTS_NAME)
    threads = _Entry(THREADS_NAME)
    train_log = _Entry(TRAIN_LOG_NAME)
    progress = _Entry(PROGRESS_NAME)
    unreadable = _Entry(UNREADABLE_NAME)

    @property
    def checkpoints(self) -> tuple[Path, Path]:
        """The newest checkpoint and the one before, in the order a resume tries them."""
        return self.checkpoint, self.checkpoint_prev


class SweepLayout(_Layout):
    """The files of a sweep directory; `cell(cell_id)` gives one cell's."""

    root = _Entry()
    manifest = _Entry(MANIFEST_NAME)
    driver_lock = _Entry(DRIVER_LOCK_NAME)
    cells = _Entry(CELLS_DIR)
    logs = _Entry(LOGS_DIR)
    submitit_folder = _Entry(LOGS_DIR, "%j")  # a SLURM executor's `folder`: one sub-folder per job id
    # a local executor's `folder`: its controller makes the folder it is given literally (a `%j` in
    # the path would leave an empty `logs/%j/`), so local job files go flat: logs/<pid>_0_log.out
    local_submitit_folder = _Entry(LOGS_DIR)
    report = _Entry(REPORT_DIR)
    inductor_cache = _Entry(CACHE_DIR, "inductor")

    def cell(self, cell_id: str) -> CellLayout:
        return CellLayout(self.cells / cell_id)

    def cell_dirs(self) -> list[Path]:
        """The cell directories present on disk, sorted by name ([] without cells/)."""
        if not self.cells.is_dir():
            return []
        return sorted(d for d in self.cells.iterdir() if d.is_dir())

    def looks_like_sweep(self) -> bool:
        """A directory with a manifest or a cells/ folder (what the analysis loader accepts)."""
        return self.root.is_dir() and (self.manifest.is_file() or self.cells.is_dir())


class StudyLayout(SweepLayout):
    """A tuning study's directory: a sweep layout (cells/, logs/, report/) plus the study's own files."""

    meta = _Entry(STUDY_META_NAME)
    journal = _Entry(JOURNAL_NAME)
    workers = _Entry(WORKERS_NAME)
    jobs = _Entry(JOBS_NAME)
    best = _Entry(BEST_NAME)
    tuned_recipe = _Entry("recipe", "tuned.yaml")

    def worker_log(self, index: int) -> Path:
        return self.logs / f"worker{index}.log"
