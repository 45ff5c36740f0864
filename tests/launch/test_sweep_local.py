"""The sweep driver end to end on the local launcher: real subprocesses, real files on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rsscale.layout import SweepLayout
from tests.launch.sweep_helpers import FAST, REPO, TEST_GRIDS, attempts, records, status, sweep


@pytest.mark.slow
def test_local_sweep_completes_then_rerun_skips_everything(tmp_path):
    d = tmp_path / "sw"
    out = sweep(d).stdout
    assert "2 new" in out and "2 completed" in out
    recs = records(d)
    assert len(recs) == 2 and all(r["status"] == "completed" for r in recs.values())
    assert all(r["final"]["top1"] is not None and r["cost"]["flops_per_image"] > 0 for r in recs.values())
    manifest = json.loads(SweepLayout(d).manifest.read_text())
    assert manifest["grid"] == "tiny" and len(manifest["cells"]) == 2
    before = attempts(d)
    assert set(before.values()) == {1}
    again = sweep(d).stdout
    assert "2 completed" in again and "0 new" in again
    assert attempts(d) == before  # nothing trained again
    rows = status(d)
    assert {r["status"] for r in rows} == {"completed"} and all(r["attempts"] == 1 for r in rows)


@pytest.mark.slow
def test_failure_is_isolated_classified_and_retried_only_by_policy(tmp_path):
    d = tmp_path / "sw"
    proc = sweep(d, grid="faulty", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {r["cell_id"]: r for r in status(d)}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error_class"] == "code_error"
    assert sum(r["status"] == "completed" for r in rows.values()) == 2
    rec = records(d)[failed[0]["cell_id"]]
    assert rec["status"] == "failed" and "fault injection" in rec["error"]
    # Re-run: code errors are not retried by default; completed cells are skipped.
    before = attempts(d)
    out = sweep(d, grid="faulty", check=False).stdout
    assert "1 out of retries" in out and attempts(d) == before
    # An explicit policy retries it once (it fails again: the fault is deterministic).
    sweep(d, "sweep.retry.code_error=1", grid="faulty", check=False)
    after = attempts(d)
    assert after[failed[0]["cell_id"]] == 2
    assert all(after[c] == 1 for c in after if c != failed[0]["cell_id"])


@pytest.mark.slow
def test_killed_sweep_resumes_unfinished_cells_and_skips_finished(tmp_path):
    """SIGKILL the whole local sweep mid-way; the same command completes it without retraining."""
    d = tmp_path / "sw"
    args = [
        sys.executable,
        "-m",
        "rsscale.sweep",
        "+grid=tiny",
        f"hydra.searchpath=[file://{TEST_GRIDS}]",
        *FAST,
        f"hydra.sweep.dir={d}",
        "cluster.max_parallel=1",
        "recipe.epochs=2",
        "runtime.checkpoint_every_steps=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 300
        # wait until the first cell completed and the second has a checkpoint
        while time.time() < deadline:
            recs = records(d) if SweepLayout(d).cells.exists() else {}
            done = [c for c, r in recs.items() if r["status"] == "completed"]
            ckpts = [c for c in recs if c not in done and SweepLayout(d).cell(c).checkpoint.exists()]
            if done and ckpts:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep never reached one completed cell and one checkpoint")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = ckpts[0]
    assert records(d)[killed]["status"] == "running"
    row = {r["cell_id"]: r for r in status(d)}[killed]
    assert row["status"] == "failed" and row["error_class"] == "node_failure"  # died without a word
    before = attempts(d)
    out = sweep(d, "cluster.max_parallel=1", "recipe.epochs=2", "runtime.checkpoint_every_steps=2").stdout
    assert "1 to resume" in out or "1 to retry" in out
    after = attempts(d)
    assert after[done[0]] == before[done[0]] == 1  # the finished cell was not trained again
    assert after[killed] == 2
    assert all(r["status"] == "completed" for r in records(d).values())
    lines = SweepLayout(d).cell(killed).attempts.read_text().splitlines()
    assert json.loads(lines[-1])["resume"] is True


def test_unknown_grid_fails_before_anything_is_created(tmp_path):
    proc = sweep(tmp_path / "sw", grid="nope", check=False)
    assert proc.returncode != 0
    assert "grid/nope" in proc.stderr + proc.stdout and "depth_width" in proc.stderr + proc.stdout
    assert not SweepLayout(tmp_path / "sw").manifest.exists()


def test_invalid_cell_fails_before_submission(tmp_path):
    proc = sweep(tmp_path / "sw", "model.depth=37", check=False)
    assert proc.returncode == 2
    assert "model.depth=37" in proc.stderr
    assert not SweepLayout(tmp_path / "sw").manifest.exists()


def test_sweep_dir_is_deterministic_and_overridable(tmp_path):
    env = {**os.environ, "RSSCALE_SWEEP_ROOT": str(tmp_path / "runs")}

    def dry(*extra):
        args = [sys.executable, "-m", "rsscale.sweep", "+grid=depth_width", "sweep.dry_run=true", *extra]
        p = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True)
        return p.stdout.splitlines()[0]

    first, second = dry(), dry()
    assert first == second and str(tmp_path / "runs" / "depth_width") in first
    assert "26 cells" in first  # two regimes x (7 + 7 - 1)
    other = dry("recipe.batch_size=128")
    assert "depth_width-" in other and other != first
    assert dry("cluster=slurm") == first  # the launcher does not change which results a cell gives
