"""Run `python -m rsscale.tune` as a real subprocess; small synthetic cells for speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from rsscale.layout import StudyLayout

REPO = Path(__file__).resolve().parents[2]
# ResNet-RS-26 x0.25 at 16 px on 1,024 synthetic images (~20 minival images), W&B off.
FAST = [
    "data=synthetic",
    "data.size=1024",
    "data.minival_fraction=0.05",
    "data.train_res=16",
    "recipe.batch_size=64",
    "recipe.epochs=3",
    "logger.mode=disabled",
    "runtime.eval_batch_size=256",
    "runtime.threads=1",
    "tune.poll_s=0.5",
    "tune.n_startup_trials=1",
]


def tune_cmd(study_dir: Path, *overrides: str, search: str = "lr") -> list[str]:
    return [
        sys.executable,
        "-m",
        "rsscale.tune",
        f"+search={search}",
        *FAST,
        f"hydra.sweep.dir={study_dir}",
        *overrides,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def tune(study_dir: Path, *overrides: str, search: str = "lr", timeout: float = 600, check: bool = True):
    proc = subprocess.run(
        tune_cmd(study_dir, *overrides, search=search),
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tune failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return proc


def load(study_dir: Path) -> optuna.Study:
    """The study exactly as a user opens it: plain Optuna, the journal file, default lock."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(StudyLayout(study_dir).journal)))
    return optuna.load_study(study_name=study_dir.name, storage=storage)
