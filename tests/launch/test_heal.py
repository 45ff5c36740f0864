"""A sweep never strands a cell (issue 10): one test per failure mode, each reproducing it first.

Real files, real training (tiny deterministic cells, in-process where the driver is not the
subject), real `python -m rsscale.sweep` / `rsscale.status` subprocesses and real signals where it is.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rsscale.config import cell_config, cell_hash, compose, normalize, validate_cell
from rsscale.launch.cell_states import cell_rows
from rsscale.launch.grid import GridError, check_grid_file, expand
from rsscale.launch.manifest import Manifest
from rsscale.layout import UNREADABLE_NAME, CellLayout, SweepLayout
from rsscale.train.loop import train
from tests.launch.sweep_helpers import FAST, REPO, attempts, records, status, sweep
from tests.train.train_helpers import RESUME, tiny_cell

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def local_cell(d: Path, cid: str = "c1", job: str = "111") -> Manifest:
    """A manifest with one locally submitted cell (what a killed driver leaves behind)."""
    m = Manifest(d)
    m.add_cell(cid, "h" * 16, {}, None, "cpu")
    m.add_submission(cid, f"local-{job}", "local", "cpu")
    m.cell_dir(cid).mkdir(parents=True, exist_ok=True)
    m.save()
    return m


def log_attempt(m: Manifest, cid: str, job: str) -> None:
    line = {"host": socket.gethostname(), "pid": dead_pid(), "job_id": job, "resume": False}
    with open(m.layout.cell(cid).attempts, "a") as f:
        f.write(json.dumps(line) + "\n")


def row(m: Manifest, cid: str = "c1") -> dict:
    return cell_rows(Manifest.load(m.sweep_dir), [cid])[0]


# ------------------------------------------------------------------------- 1. config follows the sweep
@pytest.mark.slow
def test_rerun_with_a_fixed_unhashed_field_retries_the_new_config_and_says_what_changed(tmp_path):
    """A cell failed under one value of a field outside the hash; the fixed re-run used to retry the
    old config. A bad value the schema can see (eval_batch_size=0) is refused before launch (issue 25);
    the failure after launch is the record's (here: written as a runner writes a code error)."""
    d = tmp_path / "sw"
    common = ["recipe.epochs=1", "runtime.max_steps=2", "data.train_res=16", "runtime.measure_latency=false"]
    bad = sweep(d, *common, "runtime.eval_batch_size=0", grid=None, check=False)
    assert bad.returncode == 2 and "runtime.eval_batch_size must be >= 1" in bad.stderr, (
        bad.stdout + bad.stderr
    )
    assert not SweepLayout(d).cells.exists()  # nothing launched
    sweep(d, *common, "runtime.eval_batch_size=128", grid=None)
    (r,) = status(d)
    rec_path = SweepLayout(d).cell(r["cell_id"]).record
    rec = json.loads(rec_path.read_text())
    rec.update(status="failed", error_class="code_error", error="ValueError: eval failed")
    rec_path.write_text(json.dumps(rec))
    good = sweep(d, *common, "runtime.eval_batch_size=256", "sweep.retry.code_error=1", grid=None)
    assert "config refreshed (runtime.eval_batch_size)" in good.stdout, good.stdout
    (r,) = status(d)
    assert r["status"] == "completed" and r["config_changed"] == ["runtime.eval_batch_size"]
    cid = r["cell_id"]
    assert json.loads(SweepLayout(d).cell(cid).config.read_text())["runtime"]["eval_batch_size"] == 256
    assert (
        json.loads(SweepLayout(d).cell(cid).record.read_text())["config"]["runtime"]["eval_batch_size"] == 256
    )


# ------------------------------------------------------------------------------ 2. one run, one cell
def test_values_are_normalised_before_hashing_so_one_run_is_one_cell(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "spell.yaml").write_text(
        "name: spell\naxes:\n  recipe.epochs: [1, 1.0, '1']\n  model.width: [0.25, 2.5e-1]\n"
        "fixed:\n  data.train_res: 16\n"
    )
    _, cells = expand(compose(["+grid=spell", f"hydra.searchpath=[file://{tmp_path}]", "data=synthetic"]))
    assert len(cells) == 1, [c.cell_id for c in cells]
    assert cells[0].config["recipe"]["epochs"] == 1 and cells[0].cell_id.startswith("d")
    assert "-e1-" in cells[0].cell_id
    cell = tiny_cell()
    spelled = json.loads(json.dumps(cell))
    spelled["model"]["blocks"] = None
    spelled["recipe"]["epochs"] = 2.0
    spelled["recipe"]["weight_decay"] = str(cell["recipe"]["weight_decay"])
    assert cell_hash(spelled) == cell_hash(cell)
    assert normalize({"a": (1, 2.0), "b": "true", "c": "null", "d": "1_000", "e": "auto"}) == {
        "a": [1, 2],
        "b": True,
        "c": None,
        "d": 1000,
        "e": "auto",
    }


# ------------------------------------------------------------------- 3. state derived from evidence
def _curve(rec: dict) -> list[tuple]:
    return [(h["epoch"], h["step"], h["train_loss"], h["minival_top1"]) for h in rec["history"]]


def test_lost_or_garbage_record_and_bad_checkpoint_resume_from_evidence(tmp_path):
    cell = tiny_cell(base=RESUME)
    ref = train(cell, tmp_path / "ref", cell_id_="c1")
    m = local_cell(tmp_path / "sw")
    run = m.cell_dir("c1")
    done = train(cell, run, cell_id_="c1")
    assert done["final"] == ref["final"]
    log_attempt(m, "c1", "111")

    CellLayout(run).record.unlink()  # deleted: was `failed code_error`, out of retries
    assert (row(m)["status"], row(m)["error_class"]) == ("interrupted", None)
    again = train(cell, run, cell_id_="c1")
    assert again["status"] == "completed" and again["final"] == ref["final"]
    assert _curve(again) == _curve(ref)  # the history came back from the checkpoint

    CellLayout(run).record.write_text('{"status": "compl')  # truncated
    assert row(m)["status"] == "interrupted"
    again = train(cell, run, cell_id_="c1")  # used to crash on the same file
    assert again["final"] == ref["final"]

    CellLayout(run).checkpoint.write_bytes(b"garbage")  # falls back to the previous checkpoint
    CellLayout(run).record.unlink()
    assert CellLayout(run).checkpoint_prev.exists()
    again = train(cell, run, cell_id_="c1")
    assert again["final"] == ref["final"]
    assert torch.load(CellLayout(run).checkpoint, weights_only=False)["step"] == ref["history"][-1]["step"]


def test_kill_during_start_up_is_a_node_failure_and_pending_without_a_driver_is_interrupted(tmp_path):
    m = local_cell(tmp_path / "a", job="222")
    log_attempt(m, "c1", "222")  # started, no record yet, process gone: killed, not a code bug
    assert (row(m)["status"], row(m)["error_class"]) == ("failed", "node_failure")

    m = local_cell(tmp_path / "b", job="333")  # submitted, never started, driver gone (Ctrl-C)
    assert row(m)["status"] == "interrupted"
    lock = open(m.sweep_dir / ".driver.lock", "w")  # noqa: SIM115 - a live driver holds it
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "rsscale.status", str(m.sweep_dir), "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert json.loads(out.stdout)[0]["status"] == "pending"  # a live driver will start it
    finally:
        lock.close()


# ---------------------------------------------------------------- 4. the local driver owns its cells
def _start(d: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "rsscale.sweep", *FAST, f"hydra.sweep.dir={d}", *extra]
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _training_pid(d: Path, timeout: float = 240) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cell in SweepLayout(d).cells.glob("*") if SweepLayout(d).cells.exists() else []:
            att = CellLayout(cell).attempts
            rec = CellLayout(cell).record
            if att.exists() and rec.exists() and CellLayout(cell).checkpoint.exists():
                lines = [json.loads(x) for x in att.read_text().splitlines() if x.strip()]
                if json.loads(rec.read_text())["status"] == "running":
                    return cell.name, int(lines[-1]["pid"])
        time.sleep(0.2)
    raise AssertionError("no cell started training")


def _gone(pid: int, timeout: float) -> bool:
    from rsscale.launch.supervision import pid_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_sigterm_and_sigkill_of_the_local_driver_stop_its_cells_which_resume(tmp_path):
    d = tmp_path / "sw"
    long = [
        "data.train_res=16",
        "data.size=4096",
        "recipe.epochs=3",
        "runtime.checkpoint_every_steps=5",
        "runtime.threads=1",
        "runtime.measure_latency=false",
    ]
    proc = _start(d, *long)
    try:
        cid, pid = _training_pid(d)
        os.kill(proc.pid, signal.SIGTERM)  # what `timeout` or a batch system sends
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in out + err and "SIGTERM: stopping" in out, out + err
    assert _gone(pid, 30), "the cell kept training after its driver stopped"
    assert records(d)[cid]["status"] == "preempted"
    assert {r["cell_id"]: r["status"] for r in status(d)}[cid] == "preempted"

    proc = _start(d, *long)  # SIGKILL of the driver alone: the cell notices and stops itself
    try:
        cid2, pid = _training_pid(d)
        assert cid2 == cid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert _gone(pid, 30), "the cell kept training unsupervised after its driver was killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert records(d)[cid]["status"] == "preempted"
    sweep(d, *long, grid=None)
    assert records(d)[cid]["status"] == "completed"
    assert attempts(d)[cid] == 3
    lines = SweepLayout(d).cell(cid).attempts.read_text().splitlines()
    assert all(json.loads(x)["resume"] for x in lines[1:])


# ------------------------------------------------------------------------ 5. checked before launch
def test_what_can_be_checked_before_launch_is():
    with pytest.raises(ValueError, match="data.minival_fraction"):
        validate_cell(tiny_cell("data.minival_fraction=0"))
    with pytest.raises(ValueError, match="data.minival_fraction=0.0005 of 512 images is an empty minival"):
        validate_cell(tiny_cell("data.minival_fraction=0.0005"))
    with pytest.raises(ValueError, match=r"recipe.batch_size=1024 is larger than the 502 training images"):
        validate_cell(tiny_cell("recipe.batch_size=1024"))
    if not torch.cuda.is_available():
        from rsscale.driver import SweepError, resource_classes
        from rsscale.launch.backends import LocalBackend

        _, cells = expand(compose(["data=synthetic", "runtime.device=cuda"]))
        with pytest.raises(SweepError, match="runtime.device=cuda, but this host has no usable CUDA GPU"):
            resource_classes(LocalBackend({"name": "local"}), cells)


def test_image_trees_are_non_empty_and_decodable_before_launch(tmp_path):
    from rsscale.data import validate_data_cfg

    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
    cfg = {"name": "imagenet", "root": str(tmp_path), "minival_fraction": 0.02, "num_workers": 0}
    with pytest.raises(ValueError, match=r"no images .* under .*train/<class>/"):
        validate_data_cfg(cfg)
    (tmp_path / "train" / "cat" / "a.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"train/cat/a.JPEG cannot be decoded"):
        validate_data_cfg(cfg)


def test_unreadable_images_are_counted_skipped_and_listed_up_to_a_share(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.train.train_helpers import TINY

    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.JPEG")
    (root / "train" / "b" / "5.JPEG").write_bytes(b"truncated")  # one bad file of 20
    base = [o for o in TINY if not o.startswith(("data=", "data.size", "recipe.batch_size"))]
    over = [*base, "data=imagenet", f"data.root={root}", "data.num_workers=0", "data.minival_fraction=0.2"]
    over += ["recipe.batch_size=4", "recipe.epochs=1"]
    cell = cell_config(compose([*over, "data.max_unreadable_fraction=0.1"]))
    rec = train(cell, tmp_path / "ok", cell_id_="c")  # one unreadable JPEG used to kill the cell
    assert rec["status"] == "completed" and rec["data_issues"]["unreadable_images"] == 1
    listed = (tmp_path / "ok" / UNREADABLE_NAME).read_text()
    assert str(root / "train" / "b" / "5.JPEG") in listed
    strict = cell_config(compose([*over, "data.max_unreadable_fraction=0"]))
    with pytest.raises(ValueError, match=r"data.max_unreadable_fraction=0.0: 1 of 20 images are unreadable"):
        train(strict, tmp_path / "strict", cell_id_="c")


def test_no_minival_is_reported_missing_never_as_zero(tmp_path):
    rec = train(tiny_cell("data.minival_fraction=null", "recipe.epochs=1"), tmp_path / "r", cell_id_="c")
    assert rec["status"] == "completed"
    assert rec["history"][0]["minival_top1"] is None and rec["final"]["minival_top1"] is None
    assert rec["final"]["top1"] is not None and rec["final"]["best_minival_top1"] is None


# ------------------------------------------------------------------------- 6. errors say what happened
def test_unreadable_manifest_is_named_and_status_reads_the_cells(tmp_path):
    m = local_cell(tmp_path / "sw")
    m.path.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.status", str(m.sweep_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0  # issue 25: named, and the cells read from their own files
    assert str(m.path) in proc.stderr and "the next sweep command sets it aside" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "c1" in proc.stdout


def test_grid_yaml_errors_name_the_file_line_and_column(tmp_path):
    g = tmp_path / "grid"
    g.mkdir()
    (g / "bad.yaml").write_text("name: bad\naxes:\n  model.width: [0.25, 0.5\nfixed:\n  recipe.epochs: 1\n")
    (g / "blank.yaml").write_text("\n")
    (g / "anon.yaml").write_text("axes:\n  model.width: [0.25]\n")
    with pytest.raises(GridError, match=r"anon.yaml:1:1: the grid has no `name:`"):
        check_grid_file(g / "anon.yaml")
    with pytest.raises(GridError, match=r"blank.yaml:1:1: the grid file is empty"):
        check_grid_file(g / "blank.yaml")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsscale.sweep",
            "+grid=bad",
            f"hydra.searchpath=[file://{tmp_path}]",
            f"hydra.sweep.dir={tmp_path / 'sw'}",
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"rsscale.sweep: error: {g / 'bad.yaml'}:4:6: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence)"
    ), proc.stderr
