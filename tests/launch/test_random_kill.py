"""Random kills: a 6-cell sweep, killed at random moments again and again, each kill followed by a
re-run of the same command, ends with every cell completed and the metrics of an uninterrupted run.

Local launcher: SIGKILL of a cell, SIGKILL of the driver, SIGTERM of the driver. Real SLURM
cluster (scripts/slurm_up.sh): `scancel` of an array task, `scontrol requeue`, SIGKILL / SIGTERM of
the driver. Cells are tiny (16 px synthetic, 2 epochs of 7 steps, a checkpoint every 2 steps,
deterministic fp32 on one thread), so that kills land in start-up, training and evaluation alike.
The seed of the kill schedule is printed (RSSCALE_KILL_SEED reproduces a schedule).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsscale.launch.supervision import pid_alive
from rsscale.layout import SweepLayout
from tests.launch.sweep_helpers import FAST, REPO, TEST_GRIDS, records

pytestmark = pytest.mark.slow

CELLS = [
    "recipe.epochs=2",
    "runtime.checkpoint_every_steps=2",
    "runtime.deterministic=true",
    "runtime.threads=1",
    "runtime.precision=fp32",
    "runtime.measure_latency=false",
    "sweep.retry.node_failure=1000",
    "sweep.retry.cancelled=1000",
    "sweep.poll_s=0.5",
]
SLURM = ["cluster=slurm", "cluster.partition=debug"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
KILLS = {"local": 12, "slurm": 8}  # >= 20 in all


def command(d: Path, *extra: str) -> list[str]:
    grid = ["+grid=kill6", f"hydra.searchpath=[file://{TEST_GRIDS}]"]
    return [sys.executable, "-m", "rsscale.sweep", *grid, *FAST, f"hydra.sweep.dir={d}", *CELLS, *extra]


def run_to_completion(d: Path, *extra: str, tries: int = 12) -> int:
    """Re-run the same command until it reports every cell completed; return the number of runs."""
    for i in range(1, tries + 1):
        proc = subprocess.run(
            command(d, *extra), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600
        )
        if proc.returncode == 0:
            return i
        if proc.returncode not in (1,):
            raise AssertionError(f"re-run {i} failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
        time.sleep(2)  # cells of a killed driver still stopping, or SLURM jobs still running
    raise AssertionError(f"not every cell completed after {tries} re-runs:\n{proc.stdout}")


def final_metrics(d: Path) -> dict[str, tuple]:
    out = {}
    for cid, rec in records(d).items():
        assert rec["status"] == "completed", (cid, rec["status"], rec.get("error"))
        curve = [(h["step"], h["train_loss"], h["minival_top1"]) for h in rec["history"]]
        out[cid] = (json.dumps(rec["final"], sort_keys=True), curve)
    return out


def live_cell_pids(d: Path) -> list[int]:
    pids = []
    for f in SweepLayout(d).cells.glob("*/attempts.jsonl") if SweepLayout(d).cells.exists() else []:
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if lines and lines[-1]["host"] == socket.gethostname() and pid_alive(int(lines[-1]["pid"])):
            pids.append(int(lines[-1]["pid"]))
    return pids


def slurm_tasks(d: Path, state: str) -> list[str]:
    if not SweepLayout(d).manifest.exists():
        return []
    cells = json.loads(SweepLayout(d).manifest.read_text())["cells"].values()
    ids = [c["submissions"][-1]["job_id"] for c in cells if c["submissions"]]
    if not ids:
        return []
    out = subprocess.run(
        ["squeue", "-h", "-t", state, "-j", ",".join(i.split("_")[0] for i in ids), "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return sorted(set(out) & set(ids))


def launches(d: Path) -> int:
    """Submissions in the manifest so far (a driver that launched cells added some)."""
    try:
        cells = json.loads(SweepLayout(d).manifest.read_text())["cells"].values()
    except (OSError, ValueError):
        return 0
    return sum(len(c["submissions"]) for c in cells)


def wait_launch(d: Path, before: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and launches(d) <= before:
        time.sleep(0.2)


def kill_loop(d: Path, launcher: str, n_kills: int, rng: random.Random, extra: list[str]) -> list[str]:
    """Start the command, wait a random moment, kill something, re-run; `n_kills` times."""
    done: list[str] = []
    proc = None
    try:
        while len(done) < n_kills:
            if proc is None or proc.poll() is not None:
                before = launches(d)
                proc = subprocess.Popen(
                    command(d, *extra),
                    cwd=REPO,
                    env=ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                # a quarter of the kills land in the driver's start-up; the rest while cells run
                if rng.random() < 0.75:
                    wait_launch(d, before, proc)
            time.sleep(rng.uniform(0.5, 5.0))
            if proc.poll() == 0:
                break  # every cell completed before the next kill: the caller starts a new round
            if proc.poll() is not None:
                continue  # it gave up before the kill: the loop re-runs it
            kinds = ["driver_kill", "driver_term"]
            if launcher == "local" and live_cell_pids(d):
                kinds += ["cell_kill"] * 2
            if launcher == "slurm":
                if slurm_tasks(d, "RUNNING"):
                    kinds += ["scancel", "requeue"] * 2
                elif slurm_tasks(d, "PENDING"):
                    kinds += ["scancel"] * 2
            kind = rng.choice(kinds)
            if kind == "cell_kill":
                os.kill(rng.choice(live_cell_pids(d)), signal.SIGKILL)
            elif kind == "driver_kill":
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            elif kind == "driver_term":
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=180)
            else:
                tasks = slurm_tasks(d, "RUNNING") or slurm_tasks(d, "PENDING")
                if not tasks:
                    continue
                task = rng.choice(tasks)
                cmd = ["scancel", task] if kind == "scancel" else ["scontrol", "requeue", task]
                subprocess.run(cmd, capture_output=True, timeout=60, check=False)
            done.append(kind)
    finally:
        if proc is not None and proc.poll() is None:
            proc.wait(timeout=300)  # let the last run finish; the final re-run takes over
    return done


def _seed() -> int:
    return int(os.environ.get("RSSCALE_KILL_SEED") or random.SystemRandom().randrange(10**6))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple]:
    """The same sweep, never interrupted (local; CPU results do not depend on the launcher)."""
    d = tmp_path_factory.mktemp("ref") / "sw"
    assert run_to_completion(d, tries=1) == 1
    return final_metrics(d)


def kill_rounds(tmp_path: Path, launcher: str, reference: dict, extra: list[str]) -> None:
    """Kill until KILLS[launcher] kills are done: a round ends when its sweep completes (re-run to
    completion, metrics checked); the next round starts a fresh sweep directory."""
    seed = _seed()
    rng = random.Random(seed)
    kills: list[str] = []
    for i in range(4):
        d = tmp_path / f"sw{i}"
        kills += kill_loop(d, launcher, KILLS[launcher] - len(kills), rng, extra)
        runs = run_to_completion(d, *extra)
        got = final_metrics(d)
        lost = sorted(set(reference) - set(got))
        counts = {k: kills.count(k) for k in sorted(set(kills))}
        print(
            f"\nrandom-kill {launcher} (seed {seed}) round {i}: {len(kills)} kills so far {counts}; "
            f"final re-runs {runs}; lost cells {len(lost)}"
        )
        assert len(reference) == 6 and not lost
        for cid, want in reference.items():
            assert got[cid] == want, f"{cid}: metrics differ from the uninterrupted run"
        if len(kills) >= KILLS[launcher]:
            return
    raise AssertionError(f"only {len(kills)} kills in 4 rounds")


def test_random_kills_of_a_local_sweep_lose_nothing(reference, tmp_path):
    kill_rounds(tmp_path, "local", reference, [])


@pytest.mark.slurm
def test_random_kills_of_a_slurm_sweep_lose_nothing(slurm_cluster, reference, tmp_path):
    try:
        kill_rounds(tmp_path, "slurm", reference, SLURM)
    finally:
        for d in tmp_path.glob("sw*"):
            if SweepLayout(d).manifest.exists():
                cells = json.loads(SweepLayout(d).manifest.read_text())["cells"].values()
                ids = [s["job_id"] for c in cells for s in c["submissions"]]
                subprocess.run(["scancel", *ids], capture_output=True, check=False, timeout=60)
