"""Kill the driver and both local workers mid-study (SIGKILL), tear the journal, re-run: finished
trials are kept, stale RUNNING ones re-queued and resumed from their checkpoints, and the total
budget holds across invocations (counted with plain `optuna.load_study`). ~2-3 minutes busy."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest
from optuna.trial import TrialState

from rsscale.layout import StudyLayout
from rsscale.tune.study import REQUEUED, ROOT
from tests.tune.tune_helpers import REPO, env, load, tune, tune_cmd

pytestmark = pytest.mark.slow

RUN = [
    "tune.n_trials=4",
    "tune.workers=2",
    "tune.heartbeat_s=1",
    "tune.stale_after_s=4",
    "recipe.epochs=3",
    "tune.pruner=none",
]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _wait_for_mid_study(d, proc, timeout=400):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        if StudyLayout(d).journal.exists():
            trials = load(d).trials
            running = [t for t in trials if t.state == TrialState.RUNNING]
            done = [t for t in trials if t.state in FINISHED]
            checkpointed = [
                t
                for t in running
                if t.user_attrs.get("cell_id")
                and StudyLayout(d).cell(t.user_attrs["cell_id"]).checkpoint.exists()
            ]
            if done and checkpointed:
                return
        time.sleep(1)
    raise AssertionError("the study did not reach a finished + a checkpointed running trial in time")


def test_sigkilled_study_resumes_requeues_stale_trials_and_keeps_the_budget(tmp_path):
    d = tmp_path / "study"
    proc = subprocess.Popen(
        tune_cmd(d, *RUN),
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_mid_study(d, proc)
    finally:
        pids = [json.loads(line)["pid"] for line in StudyLayout(d).workers.read_text().splitlines()]
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local workers it started
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    before = load(d).trials
    kept = {t.number: (t.state, t.value) for t in before if t.state in FINISHED}
    stale = [t.number for t in before if t.state == TrialState.RUNNING]
    ckpt = {n: StudyLayout(d).cell(f"trial-{n:04d}").checkpoint.exists() for n in stale}
    assert kept and any(ckpt.values())
    with open(StudyLayout(d).journal, "ab") as f:  # killed in the middle of an append
        f.write(b'{"op_code":6,"worker_id":"x","trial_id":')

    out = tune(d, *RUN).stdout
    trials = load(d).trials
    assert {t.number: (t.state, t.value) for t in trials if t.number in kept} == kept
    for n in stale:
        assert trials[n].state == TrialState.FAIL and REQUEUED in trials[n].system_attrs
        copies = [t for t in trials if t.user_attrs.get(ROOT) == n]
        assert len(copies) == 1 and copies[0].state in FINISHED
        assert copies[0].params == trials[n].params
        att = [json.loads(x) for x in StudyLayout(d).cell(f"trial-{n:04d}").attempts.read_text().splitlines()]
        assert len(att) == 2 and att[1]["resume"] is ckpt[n]  # resumed from the dead worker's checkpoint
    counted = [t for t in trials if not (t.state == TrialState.FAIL and REQUEUED in t.system_attrs)]
    assert len(counted) == 4 and all(t.state in FINISHED for t in counted)
    best = json.loads(StudyLayout(d).best.read_text())
    assert best["trials"]["fail"] == len(stale) and best["val_top1"] is not None
    assert "4/4 trials of the budget" in out

    again = tune(d, *RUN).stdout  # the budget is total across invocations: nothing more to run
    assert "4/4 trials of the budget used, 0 running or queued" in again and "worker(s)" not in again
    assert len(load(d).trials) == len(trials)

    st = subprocess.run(
        [".venv/bin/python", "-m", "rsscale.status", str(d)],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    lines = [x for x in st.splitlines() if x[:1].isdigit()]
    assert len(lines) == len(trials) and sum(" requeued " in x for x in lines) == len(stale)
    assert f"study {d.name}: 4/4 trials of the budget" in st
