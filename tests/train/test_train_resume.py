"""Resume: a SIGKILLed or preempted run, restarted, ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from train_helpers import RESUME, STEPS_PER_EPOCH, assert_same_run, finish, load_ckpt, start_run, tiny_cell

from rsscale.config import cell_hash
from rsscale.layout import CHECKPOINT_NAME, RECORD_NAME
from rsscale.train.loop import PreemptRequested, train


def test_sigkill_mid_epoch_then_restart_matches_uninterrupted(tmp_path, reference_run):
    ref_dir, ref_record = reference_run
    run_dir = tmp_path / "run"
    # steps take >= 0.3 s, so the kill lands well before the next checkpoint (step 4)
    proc = start_run(tmp_path, run_dir, RESUME, env={"TEST_STEP_SLEEP": "0.3"})
    ckpt_path = run_dir / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    while not ckpt_path.exists():  # the first checkpoint is at step 2 of epoch 1
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint appeared:\n{(tmp_path / 'run.log').read_text()[-3000:]}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    ckpt = load_ckpt(run_dir)
    assert ckpt["epoch"] == 0 and 0 < ckpt["micro_in_epoch"] < STEPS_PER_EPOCH, "killed mid-epoch"
    killed = json.loads((run_dir / RECORD_NAME).read_text())
    assert killed["status"] == "running" and killed["history"] == []  # nothing got to write it

    result = finish(start_run(tmp_path, run_dir, RESUME))
    assert result["returncode"] == 0 and result["status"] == "completed"
    record = json.loads((run_dir / RECORD_NAME).read_text())
    assert record["attempts"] == 2
    assert record["cell_hash"] == ref_record["cell_hash"] == cell_hash(tiny_cell(base=RESUME))
    assert_same_run(ref_dir, run_dir, ref_record, record)


def test_sigusr2_checkpoints_at_step_boundary_then_restart_matches(tmp_path, reference_run):
    ref_dir, ref_record = reference_run
    cell = tiny_cell(base=RESUME)
    run_dir = tmp_path / "run"
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)  # no previous handler (not under submitit)
    try:

        def on_step(step):
            if step == 3:  # mid-epoch 1, and not a checkpoint_every_steps=2 boundary
                os.kill(os.getpid(), signal.SIGUSR2)

        with pytest.raises(PreemptRequested):
            train(cell, run_dir, on_step=on_step)
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # handler restored
    finally:
        signal.signal(signal.SIGUSR2, previous)

    ckpt = load_ckpt(run_dir)
    assert (ckpt["step"], ckpt["epoch"], ckpt["micro_in_epoch"]) == (3, 0, 3)
    rec = json.loads((run_dir / RECORD_NAME).read_text())
    assert (rec["status"], rec["error_class"], rec["finished"]) == ("preempted", "preempted", None)

    record = train(cell, run_dir)
    assert record["attempts"] == 2
    assert_same_run(ref_dir, run_dir, ref_record, record)
    # a completed run directory is a no-op on restart
    again = train(cell, run_dir)
    assert again["status"] == "completed" and again["attempts"] == 2
