"""Run `python -m rsscale.sweep` / `rsscale.status` as real subprocesses in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rsscale.layout import CellLayout, SweepLayout

REPO = Path(__file__).resolve().parents[2]
TEST_GRIDS = Path(__file__).resolve().parent / "grids"
# Small, fast cells: synthetic data, W&B off, no analysis, tiny latency batch.
FAST = [
    "data=synthetic",
    "data.size=512",
    "recipe.batch_size=64",
    "logger.mode=disabled",
    "runtime.latency_batch=8",
    "runtime.latency_iters=1",
    "runtime.eval_batch_size=256",
    "sweep.analyze=false",
]


def sweep(
    sweep_dir: Path, *overrides: str, grid: str | None = "tiny", timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "rsscale.sweep"]
    if grid:
        args += [f"+grid={grid}", f"hydra.searchpath=[file://{TEST_GRIDS}]"]
    args += [*FAST, f"hydra.sweep.dir={sweep_dir}", *overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return proc


def status(sweep_dir: Path) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.status", str(sweep_dir), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout)


def attempts(sweep_dir: Path) -> dict[str, int]:
    out = {}
    for d in sorted(SweepLayout(sweep_dir).cells.iterdir()):
        f = CellLayout(d).attempts
        out[d.name] = sum(1 for line in f.read_text().splitlines() if line.strip()) if f.exists() else 0
    return out


def records(sweep_dir: Path) -> dict[str, dict]:
    return {
        d.name: json.loads(CellLayout(d).record.read_text())
        for d in sorted(SweepLayout(sweep_dir).cells.iterdir())
        if CellLayout(d).record.exists()
    }
