"""Tuning workers as a SLURM array on the real single-node cluster: one worker is scancel'ed in the
middle of a trial and the study still completes its budget (the other worker re-queues the dead
worker's trial after its heartbeat goes stale and resumes it from the checkpoint). ~2-3 minutes."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from optuna.trial import TrialState

from rsscale.layout import StudyLayout
from rsscale.tune.study import REQUEUED, ROOT
from tests.tune.tune_helpers import REPO, env, load, tune_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN = [
    "cluster=slurm",
    "cluster.partition=debug",
    "tune.n_trials=3",
    "tune.workers=2",
    "tune.heartbeat_s=1",
    "tune.stale_after_s=6",
    # scancel is SIGTERM, then SIGKILL after KillWait (5 s): the trial must outlast it on a quiet machine too
    # (6 epochs took 8 s there and the victim finished before the SIGKILL)
    "recipe.epochs=16",
    "tune.pruner=none",
]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def stop_study(proc: subprocess.Popen, d) -> None:
    """A test that failed midway leaves no driver or worker jobs behind on the shared cluster."""
    if proc.poll() is None:
        proc.kill()
        ids = [j for line in StudyLayout(d).jobs.read_text().splitlines() for j in json.loads(line)["jobs"]]
        subprocess.run(["scancel", *ids], check=False)


def test_slurm_array_workers_survive_a_scancel_mid_trial(slurm_cluster, tmp_path):
    d = tmp_path / f"tune-slurm-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        tune_cmd(d, *RUN), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    victim = None
    try:
        t0 = time.monotonic()
        while victim is None and time.monotonic() - t0 < 400:
            assert proc.poll() is None, proc.stdout.read()
            if StudyLayout(d).journal.exists():
                for t in load(d).trials:
                    cid, job = (
                        t.user_attrs.get("cell_id"),
                        (t.user_attrs.get("rsscale_worker") or {}).get("job_id"),
                    )
                    if (
                        t.state == TrialState.RUNNING
                        and job
                        and cid
                        and StudyLayout(d).cell(cid).checkpoint.exists()
                        and len(json.loads(StudyLayout(d).cell(cid).record.read_text())["history"]) < 2
                    ):  # at least two epochs left: the kill lands in this trial
                        victim = (t.number, job)
                        break
            time.sleep(1)
        assert victim is not None, "no trial reached its first checkpoint on SLURM in time"
        assert "_" in victim[1]  # an array task
        subprocess.run(["scancel", victim[1]], check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        stop_study(proc, d)
    assert proc.returncode == 0, out
    trials = load(d).trials
    dead = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and (t.user_attrs.get("rsscale_worker") or {}).get("job_id") == victim[1]
    ]
    assert [t.number for t in dead] == [victim[0]], out
    assert REQUEUED in dead[0].system_attrs
    copy = [t for t in trials if t.user_attrs.get(ROOT) == victim[0]]
    assert len(copy) == 1 and copy[0].state in FINISHED
    assert copy[0].user_attrs["rsscale_worker"]["job_id"] != victim[1]  # the surviving worker took it over
    counted = [t for t in trials if not (t.state == TrialState.FAIL and REQUEUED in t.system_attrs)]
    assert len(counted) == 3 and all(t.state in FINISHED for t in counted)
    att = StudyLayout(d).cell(f"trial-{victim[0]:04d}").attempts.read_text().splitlines()
    assert len(att) == 2 and json.loads(att[1])["resume"] is True
    assert json.loads(StudyLayout(d).best.read_text())["val_top1"] is not None


def test_a_preempted_worker_is_requeued_and_resumes_its_own_trial(slurm_cluster, tmp_path):
    """USR2 (SLURM's preemption notice): checkpoint, requeue, the same trial resumes (no FAIL, no copy)."""
    d = tmp_path / f"tune-pre-{uuid.uuid4().hex[:6]}"
    run = [
        "cluster=slurm",
        "cluster.partition=debug",
        "cluster.min_time_min=60",
        "tune.n_trials=1",
        "tune.workers=1",
        "tune.stale_after_s=300",
        "recipe.epochs=4",
        "tune.pruner=none",
    ]
    proc = subprocess.Popen(
        tune_cmd(d, *run), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        job, t0 = None, time.monotonic()
        while job is None and time.monotonic() - t0 < 400:
            assert proc.poll() is None, proc.stdout.read()
            if StudyLayout(d).cell("trial-0000").checkpoint.exists():
                job = load(d).trials[0].user_attrs["rsscale_worker"]["job_id"]
            time.sleep(1)
        assert job is not None, "the trial reached no checkpoint on SLURM in time"
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60)
        out, _ = proc.communicate(timeout=600)
    finally:
        stop_study(proc, d)
    assert proc.returncode == 0, out
    trials = load(d).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE], out
    starts = [json.loads(x) for x in StudyLayout(d).workers.read_text().splitlines()]
    assert len(starts) == 2 and starts[1]["resume_trial"] == 0  # the requeued worker knew its trial
    att = [json.loads(x) for x in StudyLayout(d).cell("trial-0000").attempts.read_text().splitlines()]
    assert len(att) == 2 and att[1]["resume"] is True and att[1]["slurm_restart_count"] >= 1
    rec = json.loads(StudyLayout(d).cell("trial-0000").record.read_text())
    assert rec["status"] == "completed" and rec["attempts"] == 2 and len(rec["history"]) == 4
