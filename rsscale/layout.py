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

STUDY_META_NAME = "study.json"
JOURNAL_NAME = "journal.log"
WORKERS_NAME = "workers.jsonl"
JOBS_NAME = "jobs.jsonl"
BEST_NAME = "best.json"


@dataclass(frozen=True)
class CellLayout:
    """The files of one cell (a sweep cell or a tuning trial chain); `dir` is cells/<cell_id>."""

    dir: Path

    def __init__(self, cell_dir: str | os.PathLike):
        object.__setattr__(self, "dir", Path(cell_dir))

    @property
    def config(self) -> Path:
        return self.dir / CONFIG_NAME

    @property
    def record(self) -> Path:
        return self.dir / RECORD_NAME

    @property
    def checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_NAME

    @property
    def checkpoint_prev(self) -> Path:
        return self.dir / PREVIOUS_CHECKPOINT_NAME

    @property
    def checkpoints(self) -> tuple[Path, Path]:
        """The newest checkpoint and the one before, in the order a resume tries them."""
        return self.checkpoint, self.checkpoint_prev

    @property
    def attempts(self) -> Path:
        return self.dir / ATTEMPTS_NAME

    @property
    def threads(self) -> Path:
        return self.dir / THREADS_NAME

    @property
    def train_log(self) -> Path:
        return self.dir / TRAIN_LOG_NAME


@dataclass(frozen=True)
class SweepLayout:
    """The files of a sweep directory; `cell(cell_id)` gives one cell's."""

    root: Path

    def __init__(self, sweep_dir: str | os.PathLike):
        object.__setattr__(self, "root", Path(sweep_dir))

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def driver_lock(self) -> Path:
        return self.root / DRIVER_LOCK_NAME

    @property
    def cells(self) -> Path:
        return self.root / CELLS_DIR

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def submitit_folder(self) -> Path:
        """submitit's `folder` argument: one sub-folder per job id."""
        return self.logs / "%j"

    @property
    def report(self) -> Path:
        return self.root / REPORT_DIR

    @property
    def inductor_cache(self) -> Path:
        return self.root / CACHE_DIR / "inductor"

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

    @property
    def meta(self) -> Path:
        return self.root / STUDY_META_NAME

    @property
    def journal(self) -> Path:
        return self.root / JOURNAL_NAME

    @property
    def workers(self) -> Path:
        return self.root / WORKERS_NAME

    @property
    def jobs(self) -> Path:
        return self.root / JOBS_NAME

    @property
    def best(self) -> Path:
        return self.root / BEST_NAME

    @property
    def tuned_recipe(self) -> Path:
        return self.root / "recipe" / "tuned.yaml"

    def worker_log(self, index: int) -> Path:
        return self.logs / f"worker{index}.log"
