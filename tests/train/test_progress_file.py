"""cells/<id>/progress.json: throttled, atomic, and never back at step 0 after a kill and resume."""

from __future__ import annotations

import json
import signal
import time

import pytest
from train_helpers import RESUME, STEPS_PER_EPOCH, load_ckpt, start_run, tiny_cell

from rsscale.layout import CellLayout
from rsscale.progress import ProgressFile, read_progress
from rsscale.train.loop import train


def test_progress_file_is_throttled_and_readable(tmp_path):
    path = tmp_path / "progress.json"
    pf = ProgressFile(path, steps_total=100, epochs=2, images_per_step=64, every_s=3600)
    pf.start(0, 0)
    assert read_progress(path)["phase"] == "starting"
    for step in range(1, 50):
        pf.tick(step, 0)  # within every_s: no rewrite
    assert read_progress(path)["step"] == 0
    fast = ProgressFile(path, steps_total=100, epochs=2, images_per_step=64, every_s=0.0)
    fast.start(10, 0)
    fast.tick(11, 0)
    time.sleep(0.05)
    fast.tick(20, 0)
    p = read_progress(path)
    assert p["step"] == 20 and p["resumed_from"] == 10 and p["phase"] == "training"
    assert p["img_s"] > 0 and p["eta_s"] > 0
    path.write_text("{half a fi")
    assert read_progress(path) is None  # a reader never crashes on a foreign file
    off = ProgressFile(tmp_path / "rank1.json", steps_total=1, epochs=1, images_per_step=1, enabled=False)
    off.start(0, 0)
    off.tick(1, 0)
    assert not (tmp_path / "rank1.json").exists()  # ranks other than 0 write nothing


def test_progress_survives_sigkill_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    path = CellLayout(run_dir).progress
    proc = start_run(tmp_path, run_dir, RESUME, env={"TEST_STEP_SLEEP": "0.4"})
    deadline = time.monotonic() + 120
    while (read_progress(path) or {}).get("step", 0) < 3:  # a tick past the first checkpoint (step 2)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no progress appeared:\n{proc.log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    at_kill = read_progress(path)
    assert at_kill["phase"] == "training" and at_kill["steps_total"] == 2 * STEPS_PER_EPOCH
    ckpt_step = load_ckpt(run_dir)["step"]
    assert 0 < ckpt_step <= at_kill["step"]

    seen = []
    rec = train(tiny_cell(base=RESUME), run_dir, on_step=lambda step: seen.append(read_progress(path)))
    first = seen[0]
    assert first["resumed_from"] == ckpt_step and first["step"] >= ckpt_step  # not back at step 0
    assert rec["status"] == "completed"
    end = read_progress(path)
    assert end["phase"] == "completed" and end["step"] == end["steps_total"] == 2 * STEPS_PER_EPOCH
    assert end["resumed_from"] == ckpt_step and end["eta_s"] == 0.0
    assert json.loads(path.read_text()) == end
