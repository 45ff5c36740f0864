"""The cell runner: what every submitit task executes, locally or on SLURM.

Checkpointable: on the preemption/timeout signal the train loop saves a checkpoint at a step
boundary and hands over to submitit, which pickles this runner again and requeues the job.
Every start, after a signal or a node failure that sent none, resumes from the newest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import submitit

from rsscale.io import is_storage_error, read_json
from rsscale.launch import supervision
from rsscale.launch.cores import ThreadFollower
from rsscale.layout import CellLayout, SweepLayout
from rsscale.train.record_file import new_record, now, write_record
from rsscale.train.stop_signals import cell_stop_signals


class CellRunner(submitit.helpers.Checkpointable):
    def __init__(
        self,
        sweep_dir: str,
        cell_id: str,
        group: str | None = None,
        threads: int | None = None,
        env: dict[str, str] | None = None,
    ):
        self.sweep_dir = str(sweep_dir)
        self.cell_id = cell_id
        self.group = group
        self.threads = threads
        self.env = dict(env or {})  # set by the backend (rsscale.launch.backends): e.g. the stop signals

    @property
    def files(self) -> CellLayout:
        return SweepLayout(self.sweep_dir).cell(self.cell_id)

    @property
    def cell_dir(self) -> Path:
        return self.files.dir

    def __call__(self) -> dict[str, Any]:
        # compiled kernels (inductor's FX/AOT caches) are shared by the cells of a sweep, on its file system
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(SweepLayout(self.sweep_dir).inductor_cache))
        os.environ.update(getattr(self, "env", None) or {})  # (runners pickled before `env` existed)
        stop_signals = cell_stop_signals()
        if stop_signals:  # a driver that owns this cell stops it with these
            supervision.install_cell_side(stop_signals)
        rank = _global_rank()
        try:  # a stop (or error) from the first line on leaves a record that says so
            if rank == 0:
                self.log_attempt()
            from rsscale.train.loop import train

            cell = read_json(self.files.config)
            if self.threads:
                import torch

                torch.set_num_threads(int(self.threads))
            setup_logging(self.files.train_log)
            # local sweeps hand idle cores to running cells, unless the cell pins its threads
            # (runtime.threads) or must be bit-reproducible (thread count changes float sums)
            rt = cell["runtime"]
            follow = None if rt.get("threads") or rt.get("deterministic") else ThreadFollower(self.cell_dir)
            record = train(cell, self.cell_dir, cell_id_=self.cell_id, group=self.group, on_step=follow)
        except BaseException as e:
            if rank == 0:
                _record_early_end(self.cell_dir, self.cell_id, e)
            raise
        final = record.get("final") or {}
        return {"cell_id": self.cell_id, "status": record["status"], "top1": final.get("top1")}

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on USR2 after the loop saved its checkpoint: requeue this runner.

        SIGTERM is ignored from here on so that the requeue's own SIGTERM cannot kill the
        `scontrol requeue` child that submitit is about to run (seen once in ~35 requeues).
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return super().checkpoint(*args, **kwargs)

    def log_attempt(self) -> None:
        env = os.environ
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job_id": job_id(),
            "slurm_restart_count": int(env.get("SLURM_RESTART_COUNT", 0) or 0),
            "resume": self.files.checkpoint.exists(),
        }
        self.cell_dir.mkdir(parents=True, exist_ok=True)
        with open(self.files.attempts, "ab") as f:
            torn = f.tell() > 0 and not _ends_with_newline(self.files.attempts)
            f.write(("\n" if torn else "").encode() + (json.dumps(line) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _record_early_end(cell_dir: Path, cell_id: str, e: BaseException) -> None:
    """An error before train() wrote a record still leaves one, so that the status says what happened
    (and a cell without a record after its process ended can only have been killed)."""
    files = CellLayout(cell_dir)
    if files.record.exists():
        return
    stopped = isinstance(e, SystemExit | KeyboardInterrupt) or type(e).__name__ == "PreemptRequested"
    try:
        config = read_json(files.config)
    except (OSError, ValueError):
        config = {}
    from rsscale.config import cell_hash

    try:
        h = cell_hash(config)
    except (KeyError, TypeError, AttributeError):
        h = ""
    rec = new_record(config, cell_id, h)
    rec.update(
        status="preempted" if stopped else "failed",
        error_class="preempted" if stopped else ("storage" if is_storage_error(e) else "code_error"),
        error=f"{type(e).__name__}: {e}",
        finished=None if stopped else now(),
    )
    with contextlib.suppress(OSError):
        write_record(cell_dir, rec)


def _global_rank() -> int:
    try:
        return submitit.JobEnvironment().global_rank
    except RuntimeError:
        return int(os.environ.get("RANK", 0))


def job_id() -> str | None:
    try:
        return submitit.JobEnvironment().job_id
    except RuntimeError:
        return None


def setup_logging(path: Path) -> None:
    """Log lines to the cell's train.log and to the job's stdout (submitit's log file)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_rsscale", False) for h in root.handlers):
        for h in (logging.FileHandler(path), logging.StreamHandler(sys.stdout)):
            h.setFormatter(fmt)
            h._rsscale = True  # type: ignore[attr-defined]
            root.addHandler(h)
