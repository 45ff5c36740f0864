"""The run record's file (record.json): one per run, written atomically; the source of truth for results.

Its format: create, load, write, provenance. What changes it during a run, and when, is
`rsscale.train.recorder.RunRecorder`'s business. Schema in docs/contracts.md. W&B mirrors it;
analysis and status read only this file.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from rsscale.io import atomic_write_json, read_json
from rsscale.layout import RECORD_NAME
from rsscale.states import ERROR_CLASSES as ERROR_CLASSES  # re-exported: the record vocabulary
from rsscale.states import RECORD_STATUSES as STATUSES  # noqa: F401 - re-exported

SCHEMA_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_record(config: dict, cell_id: str, cell_hash: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "cell_hash": cell_hash,
        "cell_id": cell_id,
        "config": config,
        "status": "running",
        "error_class": None,
        "error": None,
        "history": [],
        "final": {},
        "cost": {},
        "provenance": provenance(),
        "attempts": 0,
        "created": now(),
        "updated": now(),
        "finished": None,
    }


def load_record(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / RECORD_NAME
    if not path.exists():
        return None
    return read_json(path)


def write_record(run_dir: str | os.PathLike, record: dict) -> None:
    record["updated"] = now()
    atomic_write_json(Path(run_dir) / RECORD_NAME, record)


@lru_cache(maxsize=1)
def _static_provenance() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in ("rsscale", "torch", "torchvision", "numpy", "hydra-core", "submitit", "wandb", "optuna"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git_commit": git_commit(),
        "versions": versions,
        "python": platform.python_version(),
        "hardware": hardware(),
    }


def provenance() -> dict[str, Any]:
    env = os.environ
    return {
        **_static_provenance(),
        "hostname": socket.gethostname(),
        "slurm_job_id": env.get("SLURM_ARRAY_JOB_ID", env.get("SLURM_JOB_ID")),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
        "slurm_restart_count": int(env.get("SLURM_RESTART_COUNT", 0) or 0),
        "wandb_run_id": None,
    }


def git_commit() -> str | None:
    """The commit of the rsscale checkout, with '-dirty' when it has uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    hw: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine()}
    if torch.cuda.is_available():
        hw["gpu"] = torch.cuda.get_device_name(0)
        hw["gpu_count"] = torch.cuda.device_count()
        hw["cuda"] = torch.version.cuda
    return hw
