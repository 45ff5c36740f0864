"""The driver's live view: running cells' progress before any cell finishes, counts, failures, ETA."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest
from sweep_helpers import FAST, REPO, TEST_GRIDS

from rsscale.config import cell_config, compose
from rsscale.launch.eta import cell_seconds_estimate, cell_work
from rsscale.launch.live import Snapshot, SweepView, check_mode, duration
from rsscale.layout import SweepLayout
from rsscale.progress import ProgressFile

STEP = re.compile(r"epoch \d+/\d+  step (\d+)/(\d+)")


def _cell(*overrides: str) -> dict:
    return cell_config(compose(["data=synthetic", "model.width=0.25", *overrides]))


def test_eta_scales_with_the_cost_model():
    base, longer, wider = _cell(), _cell("recipe.epochs=6"), _cell("model.width=1.0")
    assert cell_seconds_estimate(base, []) is None  # nothing measured yet: no guess
    assert cell_seconds_estimate(base, [(base, 10.0)]) == pytest.approx(10.0)
    # the cost model's ratio: training scales with the epochs, the val set (the registry's 512
    # synthetic images) is scored once per cell
    assert cell_seconds_estimate(longer, [(base, 10.0)]) == pytest.approx(
        10.0 * cell_work(longer) / cell_work(base)
    )
    assert cell_seconds_estimate(longer, [(base, 10.0)]) == pytest.approx(
        10.0 * 6 / base["recipe"]["epochs"], rel=0.02
    )
    assert cell_seconds_estimate(wider, [(base, 10.0)]) > 5 * 10.0  # ~width^2 more FLOPs


def test_lines_view_shows_progress_counts_eta_and_failures(tmp_path):
    layout = SweepLayout(tmp_path)
    cfg = _cell()
    for cid in ("run", "queued"):
        layout.cell(cid).dir.mkdir(parents=True)
        layout.cell(cid).config.write_text(json.dumps(cfg))
    layout.cell("done").dir.mkdir(parents=True)
    layout.cell("done").record.write_text(
        json.dumps({"status": "completed", "config": cfg, "cost": {"train_time_s": 100.0}})
    )
    layout.cell("bad").dir.mkdir(parents=True)
    layout.cell("bad").record.write_text(json.dumps({"status": "failed", "error": "CUDA out of memory"}))
    pf = ProgressFile(layout.cell("run").progress, steps_total=40, epochs=2, images_per_step=64, every_s=0)
    pf.start(0, 0)
    pf.tick(1, 0)
    time.sleep(0.05)
    pf.tick(25, 1)
    rows = [
        {"cell_id": "run", "status": "running"},
        {"cell_id": "queued", "status": "pending"},
        {"cell_id": "done", "status": "completed"},
        {"cell_id": "bad", "status": "failed", "error_class": "oom"},
    ]
    out = io.StringIO()
    view = SweepView(tmp_path, mode="auto", every_s=3600, title="grid t", stream=out, announce_failures=True)
    with view as v:
        assert v.mode == "lines"  # not a terminal
        v.update(rows)
        v.update(rows)  # nothing new, every_s not passed: printed once
    text = out.getvalue()
    assert text.count("rsscale: bad failed (oom): CUDA out of memory") == 1
    head = next(line for line in text.splitlines() if line.startswith("rsscale ") and "grid t:" in line)
    assert "1 running, 1 queued, 1 completed, 1 failed" in head
    eta = re.search(r"ETA (\S+)$", head).group(1)
    assert eta != "?"  # the running cell's ETA plus the queued one's, scaled from the completed cell
    assert re.search(r"^  run  epoch 2/2  step 25/40 \(62%\)  \d+ img/s  ETA \S+$", text, re.M), text
    assert text.count("step 25/40") == 1


def test_modes_and_durations_are_checked():
    assert check_mode("lines") == "lines"
    with pytest.raises(ValueError, match="sweep.progress='bar'"):
        check_mode("bar")
    with pytest.raises(ValueError, match="must be positive"):
        SweepView("/nonexistent", every_s=0)
    assert (duration(None), duration(37), duration(250), duration(3720)) == ("?", "37s", "4m10s", "1h02m")


@pytest.mark.slow
def test_sweep_shows_running_cell_progress_before_the_first_cell_finishes(tmp_path):
    """A local sweep with stdout to a pipe prints plain lines: the running cell's step progress
    appears while the cell trains (no cell finished yet), and the other cell counts as queued."""
    d = tmp_path / "sw"
    args = [
        sys.executable, "-m", "rsscale.sweep", "+grid=tiny", f"hydra.searchpath=[file://{TEST_GRIDS}]",
        *FAST, f"hydra.sweep.dir={d}", "data.size=8192", "cluster.max_parallel=1",
        "sweep.progress_every_s=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if not sel.select(timeout=1):
                continue
            line = proc.stdout.readline()
            lines.append(line.rstrip("\n"))
            m = STEP.search(line)
            if m and int(m.group(1)) > 0:
                break
        else:
            pytest.fail("no step progress appeared:\n" + "\n".join(lines))
        proc.send_signal(signal.SIGINT)  # the driver stops its cells (they checkpoint) and exits
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "\n".join(lines)
    assert not re.search(r"^\[\d+/2\]", text, re.M), text  # no cell had finished
    assert re.search(r"grid tiny: 1 running, 1 queued, 0 completed, 0 failed", text), text
    assert proc.returncode == 128 + signal.SIGINT, rest
    watch = subprocess.run(
        [sys.executable, "-m", "rsscale.status", str(d), "--watch", "--every", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert watch.returncode == 0 and "2 cells:" in watch.stdout, watch.stdout + watch.stderr  # nothing runs


def test_eta_counts_whole_cells_starting_ones_and_the_slots_in_use(tmp_path):
    """A cell still starting has an ETA once a cell completed; seconds are whole-cell wall time
    (start-up and evaluation too), divided by the slots the sweep has used, not those busy now."""
    layout = SweepLayout(tmp_path)
    cfg = _cell()
    now = time.time()

    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))

    for cid, started in (("done", now - 500), ("start", now - 10)):
        layout.cell(cid).dir.mkdir(parents=True)
        layout.cell(cid).config.write_text(json.dumps(cfg))
        layout.cell(cid).attempts.write_text(json.dumps({"time": stamp(started)}) + "\n")
    layout.cell("queued").dir.mkdir(parents=True)
    layout.cell("queued").config.write_text(json.dumps(cfg))
    finished = dt.datetime.fromtimestamp(now - 400).astimezone().isoformat()
    layout.cell("done").record.write_text(
        json.dumps(
            {
                "status": "completed",
                "config": cfg,
                "attempts": 1,
                "finished": finished,
                "cost": {"train_time_s": 60.0},
            }
        )
    )
    rows = [
        {"cell_id": "done", "status": "completed"},
        {"cell_id": "start", "status": "running"},  # no progress file yet
        {"cell_id": "queued", "status": "pending"},
    ]
    snap = Snapshot(layout, rows, {}, slots=2)
    # the completed cell took 100 s of wall (60 s training): the starting one has ~90 s left, the
    # queued one 100 s, over 2 slots
    assert snap.eta == pytest.approx((90 + 100) / 2, abs=1.5)
    assert Snapshot(layout, rows, {}, slots=1).eta == pytest.approx(190, abs=1.5)
