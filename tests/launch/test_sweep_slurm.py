"""The sweep driver end to end on the real single-node SLURM cluster (scripts/slurm_up.sh): real
sbatch arrays, real signals, requeues and time limits, real files on disk. No mocks.

Cells are tiny (ResNet-RS-26 x0.25, 16 px synthetic images, one thread). Whole file: about 3-4
minutes on a busy 2-core machine. The 1-minute time-limit cell (~2.5 minutes through its requeues)
is submitted by the first test, so that it runs while the other tests do, and checked by the last.

Cluster timing facts the tests rely on (measured): slurmctld checks limits and `--signal` on a
~30 s timer and sends the signal at the first tick with `remaining <= delay + 30 s`; a job is
killed at the first tick after its limit; a requeued job runs again 10-20 s later.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rsscale.launch.slurm import sacct_states
from rsscale.layout import CellLayout, SweepLayout
from tests.launch.sweep_helpers import FAST, REPO, TEST_GRIDS, attempts, records, status, sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM = ["cluster=slurm", "cluster.partition=debug"]
# One default cell (grid=None) at 16 px, deterministic on one thread: runs compare exactly.
EXACT = ["data.train_res=16", "runtime.deterministic=true", "runtime.threads=1", "runtime.precision=fp32"]
# ~90 steps (~15-30 s): long enough to act on the cell while it trains. A time limit >= 60 min, so
# that submitit takes a USR2 for a preemption (USR2 after min(0.8 T, T - 10 min) is a timeout).
PREEMPTIBLE = [
    *EXACT,
    "data.size=2048",
    "recipe.epochs=3",
    "runtime.checkpoint_every_steps=5",
    "cluster.min_time_min=60",
]
# ~630 steps (60-90 s of training on one core) under a 1-minute limit. USR2 5 s before the limit
# arrives 25-55 s after the start (after the runner's start-up, whose default USR2 action would kill
# it) and ~30 s before the kill; timeouts are requeued up to max_num_timeout times.
TIMEOUT = [
    "data.train_res=16",
    "runtime.threads=1",
    "data.size=4096",
    "recipe.epochs=10",
    "cluster.min_time_min=1",
    "cluster.max_time_min=1",
    "cluster.signal_delay_s=5",
    "cluster.max_num_timeout=10",
]


# ------------------------------------------------------------------------------------------ helpers
def manifest(d: Path) -> dict:
    return json.loads(SweepLayout(d).manifest.read_text())


def job_ids(d: Path) -> list[str]:
    if not SweepLayout(d).manifest.exists():
        return []
    return [s["job_id"] for c in manifest(d)["cells"].values() for s in c["submissions"]]


def cancel_sweep(d: Path) -> None:
    ids = job_ids(d)
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, check=False, timeout=60)


@pytest.fixture
def sweeps():
    """Sweep directories of a test; their jobs are cancelled at teardown (after the assertions:
    a cell's record says completed a moment before its job ends, so no cancel before)."""
    dirs: list[Path] = []
    yield dirs
    for d in dirs:
        cancel_sweep(d)


def jobs_ended(job_ids_: list[str], timeout: float = 60) -> dict:
    """sacct states once every job has ended (the record is final a moment before the job is)."""
    deadline = time.monotonic() + timeout
    while True:
        st = sacct_states(job_ids_)
        if len(st) == len(job_ids_) and all(s.terminal for s in st.values()):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs still active after {timeout}s: {st}")
        time.sleep(0.5)


def rows_by_id(d: Path) -> dict[str, dict]:
    return {r["cell_id"]: r for r in status(d)}


def wait_status(d: Path, done, timeout: float, what: str) -> dict[str, dict]:
    """Poll `python -m rsscale.status DIR --json` until done(rows by cell id)."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        rows = rows_by_id(d)
        if done(rows):
            return rows
        time.sleep(1.0)
    raise AssertionError(
        f"{what}: not reached in {timeout:.0f}s; last status rows:\n{json.dumps(rows, indent=1)}"
    )


def all_terminal(rows: dict) -> bool:
    return bool(rows) and all(r["status"] in ("completed", "failed", "diverged") for r in rows.values())


def wait_checkpoint(d: Path, cell_id: str, timeout: float) -> dict:
    """Wait until the cell trains (a step checkpoint on disk, record running); return its record."""
    cell = SweepLayout(d).cell(cell_id).dir
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if CellLayout(cell).checkpoint.exists() and CellLayout(cell).record.exists():
            rec = json.loads(CellLayout(cell).record.read_text())
            if rec["status"] == "running":
                return rec
        time.sleep(0.2)
    raise AssertionError(f"{cell_id} never wrote a checkpoint while running; {list(cell.glob('*'))}")


def attempt_lines(d: Path, cell_id: str) -> list[dict]:
    path = SweepLayout(d).cell(cell_id).attempts
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sweep_args(d: Path, *overrides: str, grid: str | None = "tiny") -> list[str]:
    args = [sys.executable, "-m", "rsscale.sweep"]
    if grid:
        args += [f"+grid={grid}", f"hydra.searchpath=[file://{TEST_GRIDS}]"]
    return [*args, *FAST, f"hydra.sweep.dir={d}", *overrides]


def jobs_named(name: str) -> list[str]:
    """Every job of this name that the controller or accounting knows (queued, running or ended)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1hours", "--name", name, "-o", "JobID"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    queued = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return sorted(set(out) | set(queued))


@pytest.fixture(scope="module")
def timeout_sweep(slurm_cluster, tmp_path_factory):
    """A detached sweep of one cell that needs several 1-minute jobs: submitted at module start
    (the first test asks for it) so that its ~3 minutes overlap the other tests."""
    d = tmp_path_factory.mktemp("timeout") / "sw"
    out = sweep(d, *SLURM, *TIMEOUT, "sweep.detach=true", grid=None).stdout
    assert "submitted 1 cells" in out, out
    yield d
    cancel_sweep(d)


# ------------------------------------------------------------------------------------------ tests
def test_slurm_sweep_submits_an_array_waits_and_collects(slurm_cluster, timeout_sweep, sweeps, tmp_path):
    d = tmp_path / "sw"
    sweeps.append(d)
    proc = sweep(d, *SLURM)
    out = proc.stdout + proc.stderr
    assert "2 new" in out and "submitted 2 cells as array" in out
    assert "2 cells: 2 completed" in out, out  # the driver waited and printed the summary
    assert "sacct" not in out and "squeue" not in out, out  # no sacct/squeue warnings leak
    recs = records(d)
    assert len(recs) == 2 and all(r["status"] == "completed" for r in recs.values())
    assert all(r["final"]["top1"] is not None and r["history"] for r in recs.values())
    cells = manifest(d)["cells"]
    ids = [c["submissions"][-1]["job_id"] for c in cells.values()]
    assert all(re.fullmatch(r"\d+_[01]", j) for j in ids), ids
    assert len({j.split("_")[0] for j in ids}) == 1 and sorted(j[-1] for j in ids) == ["0", "1"]  # one array
    assert all(
        len(c["submissions"]) == 1 and c["submissions"][0]["launcher"] == "slurm" for c in cells.values()
    )
    assert {c["status"] for c in cells.values()} == {"completed"}
    for cid, cell in cells.items():  # the job that ran each cell is the one the manifest names
        assert [a["job_id"] for a in attempt_lines(d, cid)] == [cell["submissions"][0]["job_id"]]
        prov = recs[cid]["provenance"]
        assert f"{prov['slurm_job_id']}_{prov['slurm_array_task_id']}" == cell["submissions"][0]["job_id"]
    # sacct (which status reads) agrees once the jobs have exited: completed, none restarted
    st = jobs_ended(ids)
    assert {s.state for s in st.values()} == {"COMPLETED"} and all(s.restarts == 0 for s in st.values())
    rows = status(d)
    assert {r["status"] for r in rows} == {"completed"}
    assert all(r["attempts"] == 1 and r["submissions"] == 1 and r["slurm_state"] == "COMPLETED" for r in rows)


def test_preempted_cell_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    slurm_cluster, sweeps, tmp_path
):
    pre, ref = tmp_path / "pre", tmp_path / "ref"
    sweeps += [pre, ref]
    sweep(pre, *SLURM, *PREEMPTIBLE, "sweep.detach=true", grid=None)
    (cid,) = manifest(pre)["cells"]
    (job,) = job_ids(pre)
    assert "_" not in job  # a one-cell submission is a plain job
    rec = wait_checkpoint(pre, cid, timeout=120)
    assert len(rec["history"]) < 3  # mid-training
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60)
    # the same cell, left alone; submitted only now: on a quiet machine the ~90-step cell can finish
    # while a second `rsscale.sweep` process starts up, before the preemption was sent
    sweep(ref, *SLURM, *PREEMPTIBLE, "sweep.detach=true", grid=None)
    # the job checkpoints at the next step boundary and requeues itself; SLURM restarts it
    rows = wait_status(pre, all_terminal, 240, "preempted cell completes")
    ref_rows = wait_status(ref, all_terminal, 240, "reference cell completes")
    row = rows[cid]
    assert row["status"] == "completed" and row["error_class"] is None
    assert row["submissions"] == 1 and row["attempts"] == 2  # one logical run, two starts
    lines = attempt_lines(pre, cid)
    assert [a["job_id"] for a in lines] == [job, job] and [a["resume"] for a in lines] == [False, True]
    assert [a["slurm_restart_count"] for a in lines] == [0, 1]
    assert "resumed" in SweepLayout(pre).cell(cid).train_log.read_text()
    (state,) = jobs_ended([job]).values()  # accounting: one requeue, then completed
    assert state.state == "COMPLETED" and state.restarts == 1 and state.previous == ("REQUEUED",)
    got, want = records(pre)[cid], records(ref)[cid]
    assert got["attempts"] == 2 and want["attempts"] == 1 and ref_rows[cid]["attempts"] == 1
    assert [h["train_loss"] for h in got["history"]] == [h["train_loss"] for h in want["history"]]
    assert [h["minival_top1"] for h in got["history"]] == [h["minival_top1"] for h in want["history"]]
    assert got["final"] == want["final"]


def test_cancelled_cells_rerun_while_completed_cells_are_not_trained_again(slurm_cluster, sweeps, tmp_path):
    d = tmp_path / "sw"
    sweeps.append(d)
    # 63 steps per cell. scancel lets a job run on for KillWait (5 s: submitit ignores SIGTERM), so
    # the cancelled cell must have well over 5 s of training left when it is cancelled at step 5
    cmd = [*SLURM, "data.size=4096", "runtime.checkpoint_every_steps=5", "sweep.detach=true"]
    out = sweep(d, *cmd).stdout
    assert "2 new" in out and "submitted 2 cells" in out
    cells = manifest(d)["cells"]
    keep, victim = sorted(cells)  # cancel the slower cell (width 0.5) while it trains
    victim_job = cells[victim]["submissions"][0]["job_id"]
    wait_checkpoint(d, victim, timeout=120)
    subprocess.run(["scancel", victim_job], check=True, timeout=60)
    rows = wait_status(d, all_terminal, 180, "first submission ends")
    assert rows[keep]["status"] == "completed"
    assert rows[victim]["status"] == "failed" and rows[victim]["error_class"] == "cancelled"
    assert rows[victim]["slurm_state"] == "CANCELLED"
    jobs_ended([victim_job, cells[keep]["submissions"][0]["job_id"]])
    before = attempts(d)
    assert before == {victim: 1, keep: 1}

    out = sweep(d, *cmd).stdout  # the same command again
    assert "1 to retry" in out and "1 completed" in out and "submitted 1 cells" in out, out
    rows = wait_status(d, all_terminal, 180, "re-run completes")
    assert {r["status"] for r in rows.values()} == {"completed"}
    after = attempts(d)
    assert after[keep] == 1  # completed: not trained again
    assert after[victim] == 2 and attempt_lines(d, victim)[-1]["resume"] is True  # resumed
    assert rows[victim]["submissions"] == 2 and rows[keep]["submissions"] == 1

    out = sweep(d, *cmd).stdout  # a third time: nothing left to do
    assert "0 new, 0 to resume, 0 to retry" in out and "2 completed" in out and "submitted" not in out
    assert attempts(d) == after


def test_failed_and_cancelled_cells_do_not_stop_the_others(slurm_cluster, sweeps, tmp_path):
    """A cell that raises and a cell removed with scancel, in a blocking sweep: the third still
    completes, the driver reports all three, and each failure keeps its class and its record."""
    d = tmp_path / "sw"
    sweeps.append(d)
    # 95 steps per cell: the cancelled one has far more than KillWait (5 s) of training left
    args = sweep_args(d, *SLURM, "data.size=6144", "runtime.checkpoint_every_steps=5", grid="faulty")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not job_ids(d) and time.monotonic() < deadline:
            time.sleep(0.2)
        cells = manifest(d)["cells"]
        assert len(cells) == 3
        faulty = next(c for c, e in cells.items() if e["axes"]["runtime.fail_at_step"] == 2)
        victim, survivor = sorted(c for c in cells if c != faulty)
        wait_checkpoint(d, victim, timeout=120)
        subprocess.run(["scancel", cells[victim]["submissions"][0]["job_id"]], check=True, timeout=60)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out  # the sweep ran to its end and reports the failures
    assert "3 cells: 1 completed, 2 failed" in out, out
    rows = rows_by_id(d)
    assert rows[survivor]["status"] == "completed" and rows[survivor]["val_top1"] is not None
    assert (rows[faulty]["status"], rows[faulty]["error_class"]) == ("failed", "code_error")
    assert (rows[victim]["status"], rows[victim]["error_class"]) == ("failed", "cancelled")
    recs = records(d)
    assert recs[survivor]["status"] == "completed" and recs[survivor]["final"]["top1"] is not None
    assert recs[faulty]["status"] == "failed" and "fault injection" in recs[faulty]["error"]
    assert recs[victim]["history"] is not None  # the cancelled cell's record and checkpoint remain
    assert SweepLayout(d).cell(victim).checkpoint.exists()
    assert {c: e["status"] for c, e in manifest(d)["cells"].items()} == {
        survivor: "completed",
        faulty: "failed",
        victim: "failed",
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        # 16 GPU tasks need 2 nodes of 8 GPUs; the profile allows one node
        (["cluster.gpus_per_node=8", "runtime.tasks=16"], "allows max_nodes=1"),
        # 16 CPU tasks on one node; the partition's nodes have 8 CPUs (sinfo): it would pend forever
        (["runtime.tasks=16"], "have 8"),
    ],
    ids=["gpu-nodes", "cpu-node"],
)
def test_unsatisfiable_resources_fail_before_anything_is_submitted(
    slurm_cluster, tmp_path, overrides, message
):
    d = tmp_path / f"badres-{uuid.uuid4().hex[:8]}"  # a job name no other run has used
    proc = sweep(d, *SLURM, "recipe.batch_size=256", *overrides, grid=None, check=False, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "rsscale.sweep: error:" in err and "runtime.tasks=16" in err and message in err, err
    assert "Traceback" not in err
    assert not SweepLayout(d).manifest.exists() and not SweepLayout(d).cells.exists()
    assert jobs_named(f"rsscale-{d.name}") == []  # no job reached the controller


def test_two_task_cell_runs_as_one_ddp_job_and_follows_the_one_task_cell(slurm_cluster, sweeps, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    sweeps += [one, two]
    # the recipe of tests/train/test_train_ddp.py, pinned: the tolerance below is measured for it
    recipe = ["recipe.epochs=2", "recipe.lr_base=0.2", "recipe.warmup_epochs=0.3"]
    common = [*SLURM, *EXACT, *recipe, "sweep.detach=true"]
    sweep(two, *common, "runtime.tasks=2", grid=None)
    sweep(one, *common, grid=None)
    rows2 = wait_status(two, all_terminal, 180, "2-task cell completes")
    rows1 = wait_status(one, all_terminal, 180, "1-task cell completes")
    (cid,) = rows2
    assert rows2[cid]["status"] == "completed" and rows1[cid]["status"] == "completed"
    assert rows2[cid]["resource_class"].startswith("n1-t2-cpu") and rows2[cid]["attempts"] == 1
    (job,) = job_ids(two)
    assert "_" not in job
    jobs_ended([job])
    # one job, one step with two tasks (one per rank), each with its own submitit log
    steps = subprocess.run(
        ["sacct", "-j", job, "-n", "-P", "-o", "JobID,NTasks,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"{job}.0|2|COMPLETED" in steps, steps
    assert sorted(p.name for p in (SweepLayout(two).logs / job).glob("*_log.out")) == [
        f"{job}_0_log.out",
        f"{job}_1_log.out",
    ]
    rec2, rec1 = records(two)[cid], records(one)[cid]
    assert rec2["provenance"]["world_size"] == 2 and rec1["provenance"]["world_size"] == 1
    assert [h["step"] for h in rec2["history"]] == [h["step"] for h in rec1["history"]]
    # CPU (gloo) runs keep per-rank BatchNorm statistics (SyncBatchNorm needs an accelerator), so the
    # curves agree approximately (as in tests/train/test_train_ddp.py), not exactly
    assert rec2["provenance"]["sync_bn"] is False
    loss2 = [h["train_loss"] for h in rec2["history"]]
    loss1 = [h["train_loss"] for h in rec1["history"]]
    assert loss2 == pytest.approx(loss1, rel=0.1)
    assert rec2["final"]["top1"] == pytest.approx(rec1["final"]["top1"], abs=0.1)


def test_cell_longer_than_its_time_limit_completes_through_timeout_requeues(slurm_cluster, timeout_sweep):
    d = timeout_sweep
    (cid,) = manifest(d)["cells"]
    (job,) = job_ids(d)
    assert manifest(d)["cells"][cid]["resource_class"].endswith("-1min")
    rows = wait_status(d, all_terminal, 540, "1-minute-limit cell completes")
    row = rows[cid]
    assert row["status"] == "completed" and row["error_class"] is None, row
    assert row["submissions"] == 1 and row["attempts"] >= 2
    lines = attempt_lines(d, cid)
    assert {a["job_id"] for a in lines} == {job}
    assert [a["resume"] for a in lines] == [False] + [True] * (len(lines) - 1)  # each restart resumed
    rec = records(d)[cid]
    assert rec["status"] == "completed" and rec["final"]["top1"] is not None
    assert len(rec["history"]) == 10 and rec["history"][-1]["step"] == 10 * rec["history"][0]["step"]
    (state,) = jobs_ended([job]).values()
    assert state.state == "COMPLETED" and state.restarts == len(lines) - 1 >= 1
    assert set(state.previous) == {"REQUEUED"}
    # submitit took every USR2 as a time-out (the requeues count against max_num_timeout)
    log = (SweepLayout(d).logs / job / f"{job}_0_log.out").read_text()
    assert log.count("this job is timed-out") >= 1 and "this job is preempted" not in log
