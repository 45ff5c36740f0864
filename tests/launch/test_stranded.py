"""The last stranded paths (issue 25): garbage in any sweep file, storage failures, the way out.

Each test reproduced its defect on the code before the fix: real files, real subprocesses.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rsscale.config import compose
from rsscale.launch.cell_states import cell_rows
from rsscale.launch.grid import expand
from rsscale.launch.manifest import Manifest
from tests.launch.sweep_helpers import REPO, TEST_GRIDS

GARBAGE = bytes(random.Random(25).randrange(256) for _ in range(300)) + b"\xbe\xff\n"
TINY = ["+grid=tiny", f"hydra.searchpath=[file://{TEST_GRIDS}]", "data=synthetic"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def submitted_sweep(sweep_dir: Path) -> Manifest:
    """The manifest of the tiny grid after a local launch whose cells died (dead pids)."""
    _, cells = expand(compose(TINY))
    m = Manifest(sweep_dir)
    for i, c in enumerate(cells):
        m.add_cell(c.cell_id, c.hash, c.axes, c.case, "cpu")
        m.add_submission(c.cell_id, f"local-{i}", "local", "cpu")
        m.cell_dir(c.cell_id).mkdir(parents=True)
    m.save()
    return m


def test_binary_garbage_in_the_attempts_log_is_named_set_aside_and_never_fatal(tmp_path):
    m = submitted_sweep(tmp_path)
    cid = next(iter(m.cells))
    path = m.layout.cell(cid).attempts
    good = {"host": "elsewhere", "pid": 1, "job_id": "0", "resume": False}
    path.write_bytes(json.dumps(good).encode() + b"\n" + GARBAGE)
    row = cell_rows(Manifest.load(tmp_path), [cid])[0]  # was a UnicodeDecodeError
    assert row["attempts"] == 2  # the good line and the torn (garbage) tail: a start that died writing
    st = run("-m", "rsscale.status", str(tmp_path))
    assert st.returncode == 0 and cid in st.stdout, st.stderr
    assert str(path) in st.stderr and "unreadable" in st.stderr
    assert path.read_bytes().endswith(GARBAGE)  # status changes no file
    proc = run("-m", "rsscale.sweep", *TINY, f"hydra.sweep.dir={tmp_path}", "sweep.dry_run=true")
    assert proc.returncode == 0, proc.stderr  # was `error: 'utf-8' codec can't decode byte 0xbe`
    assert str(path) in proc.stderr and "set aside as attempts.jsonl.garbage-1" in proc.stderr
    assert path.with_name("attempts.jsonl.garbage-1").read_bytes().endswith(GARBAGE)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [good]


def _dead_start(m: Manifest, cid: str) -> None:
    """The cell's process logged its start and died without a record (what SIGTERM does to a
    cell whose handler is not installed yet)."""
    p = subprocess.Popen(["true"])
    p.wait()
    last = m.cells[cid]["submissions"][-1]
    line = {"host": socket.gethostname(), "pid": p.pid, "job_id": last["job_id"].removeprefix("local-")}
    m.layout.cell(cid).attempts.write_text(json.dumps(line) + "\n")


def test_a_stop_the_driver_sent_during_start_up_is_a_preemption_and_its_line_gives_the_reason(tmp_path):
    from submitit.core.utils import FailedJobError

    from rsscale.driver import done_line

    m = submitted_sweep(tmp_path)
    stopped, killed = list(m.cells)
    for cid in (stopped, killed):
        _dead_start(m, cid)
    m.cells[stopped]["submissions"][-1]["stopped_by"] = "SIGTERM"  # what the driver notes on a stop
    m.save()
    rows = {r["cell_id"]: r for r in cell_rows(Manifest.load(tmp_path))}
    assert (rows[stopped]["status"], rows[stopped]["error_class"]) == ("preempted", "preempted")
    assert (rows[killed]["status"], rows[killed]["error_class"]) == ("failed", "node_failure")
    err = FailedJobError(f"Job (task=0) failed\n  - {tmp_path}/logs/1/1_0_log.out")
    line = done_line(Manifest.load(tmp_path), stopped, err)
    assert line == f"{stopped}: preempted (preempted: stopped by SIGTERM; the next run resumes it)"
    assert "log" not in line


def test_out_of_retries_names_the_class_what_changed_and_the_command_that_continues(tmp_path):
    _, cells = expand(compose(TINY))
    m = submitted_sweep(tmp_path)
    c = cells[0]
    old = json.loads(json.dumps(c.config))
    old["runtime"]["eval_batch_size"] = 4  # what the failed launch ran with (outside the hash)
    m.layout.cell(c.cell_id).config.write_text(json.dumps(old))
    rec = {"status": "failed", "error_class": "code_error", "error": "ValueError: x", "config": old}
    m.layout.cell(c.cell_id).record.write_text(json.dumps(rec))
    proc = run("-m", "rsscale.sweep", *TINY, f"hydra.sweep.dir={tmp_path}", "sweep.dry_run=true")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"{c.cell_id}: out of retries (code_error: failed 1 time(s), sweep.retry.code_error=0); "
        "changed since its last run: runtime.eval_batch_size"
    ) in proc.stdout, proc.stdout
    cmd = next(x for x in proc.stdout.splitlines() if x.startswith("rsscale: to retry them: "))
    argv = shlex.split(cmd.removeprefix("rsscale: to retry them: "))
    assert argv[:3] == ["python", "-m", "rsscale.sweep"] and argv[-1] == "sweep.retry.code_error=1"
    again = run(*argv[1:])
    assert again.returncode == 0 and "1 to retry" in again.stdout, again.stdout + again.stderr


def test_the_command_that_continues_keeps_a_console_script_and_replaces_a_given_retry():
    from rsscale.launch.way_out import continue_command

    argv = ["/venv/bin/rsscale-sweep", "+grid=x", "sweep.retry.oom=1", "a b=c"]
    assert continue_command("rsscale.sweep", {"sweep.retry.oom": 2}, argv) == (
        "rsscale-sweep +grid=x 'a b=c' sweep.retry.oom=2"
    )
    argv = ["/repo/rsscale/sweep.py", "+grid=x"]
    assert continue_command("rsscale.sweep", argv=argv) == "python -m rsscale.sweep +grid=x"


# ------------------------------------------------------------------------------------------ storage
@contextlib.contextmanager
def immutable(path: Path):
    """A directory nobody may write (root included): `chattr +i`, undone afterwards."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unusable_sweep_dir_is_one_line_naming_it_not_a_traceback(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    cases = [(a_file, f"{a_file} is a file, not a directory"), (a_file / "sub", f"{a_file} is a file")]
    with immutable(locked):
        cases += [(locked / "sub", f"{locked} is not writable")]
        for sweep_dir, message in cases:
            proc = run("-m", "rsscale.sweep", *TINY, f"hydra.sweep.dir={sweep_dir}", "sweep.dry_run=true")
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert f"storage: {message}" in proc.stderr and "then: python -m rsscale.sweep" in proc.stderr


def test_storage_errors_are_their_own_class():
    from rsscale.io import is_storage_error, storage_error_in
    from rsscale.states import ERROR_CLASSES
    from rsscale.train.recorder import classify_exception

    assert "storage" in ERROR_CLASSES
    full = OSError(errno.ENOSPC, "No space left on device", "/x/checkpoint.pt")
    assert classify_exception(full) == "storage" and is_storage_error(full)
    assert classify_exception(PermissionError(errno.EACCES, "Permission denied", "/x")) == "storage"
    assert classify_exception(FileNotFoundError(errno.ENOENT, "gone", "/x")) == "code_error"
    log = "Traceback ...\nPermissionError: [Errno 13] Permission denied: '/s/cells/c/attempts.jsonl'\n"
    assert (
        storage_error_in(log) == "PermissionError: [Errno 13] Permission denied: '/s/cells/c/attempts.jsonl'"
    )


@pytest.mark.slow
def test_a_cell_dir_that_cannot_be_written_is_a_storage_failure_with_the_path_and_the_way_out(tmp_path):
    from tests.launch.sweep_helpers import FAST, records

    sw = tmp_path / "sw"
    common = [*FAST, "+grid=tiny", f"hydra.searchpath=[file://{TEST_GRIDS}]", "runtime.max_steps=2"]
    common += [f"hydra.sweep.dir={sw}", "runtime.measure_latency=false"]
    cell = expand(compose([a for a in common if not a.startswith("hydra.sweep.dir=")]))[1][0]
    cid = cell.cell_id
    cell_dir = sw / "cells" / cid
    cell_dir.mkdir(parents=True)
    (cell_dir / "config.json").write_text(json.dumps(cell.config))  # the driver has nothing to write
    with immutable(cell_dir):
        proc = run("-m", "rsscale.sweep", *common)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith(("[1/2] " + cid, "[2/2] " + cid)))
    assert (
        f"{cid}: failed (storage: PermissionError: [Errno 1] Operation not permitted: '{cell_dir}" in line
    ), line
    assert line.endswith(f"then: python -m rsscale.sweep {shlex.join(common)}"), line
    assert {r["cell_id"]: r["error_class"] for r in _status(sw)}[cid] == "storage"
    again = run("-m", "rsscale.sweep", *common)  # storage fixed: a plain re-run retries it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 to retry" in again.stdout and records(sw)[cid]["status"] == "completed"


def _status(sw: Path) -> list[dict]:
    proc = run("-m", "rsscale.status", str(sw), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------- image trees
def test_a_corrupt_first_image_is_allowed_up_to_the_share_and_listed_once(tmp_path):
    import numpy as np
    from PIL import Image

    from rsscale.config import cell_config
    from rsscale.data import validate_data_cfg
    from rsscale.layout import UNREADABLE_NAME
    from rsscale.train.loop import train
    from tests.train.train_helpers import TINY

    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.JPEG")
    bad = root / "train" / "a" / "0.JPEG"  # sorts first: the one file the pre-launch check decoded
    bad.write_bytes(b"corrupt")
    data = {"name": "imagenet", "root": str(root), "minival_fraction": 0.2, "num_workers": 0}
    validate_data_cfg({**data, "max_unreadable_fraction": 0.5})  # was: "... 0.JPEG cannot be decoded"
    with pytest.raises(ValueError, match=r"train/a/0.JPEG cannot be decoded"):
        validate_data_cfg({**data, "max_unreadable_fraction": 0.0})
    base = [o for o in TINY if not o.startswith(("data=", "data.size", "recipe.batch_size"))]
    over = [*base, "data=imagenet", f"data.root={root}", "data.num_workers=0", "data.minival_fraction=0.2"]
    cell = cell_config(
        compose([*over, "recipe.batch_size=4", "recipe.epochs=3", "data.max_unreadable_fraction=0.5"])
    )
    rec = train(cell, tmp_path / "run", cell_id_="c")
    assert rec["status"] == "completed" and rec["data_issues"]["unreadable_images"] == 1
    lines = (tmp_path / "run" / UNREADABLE_NAME).read_text().splitlines()
    assert [x.split("\t")[0] for x in lines] == [str(bad)]  # was the same file once per epoch and worker


def test_a_garbage_manifest_is_named_set_aside_and_rebuilt_from_the_cells_files(tmp_path):
    m = submitted_sweep(tmp_path)
    done, killed = list(m.cells)
    rec = {
        "status": "completed",
        "error_class": None,
        "cell_hash": m.cells[done]["hash"],
        "final": {"top1": 0.5},
    }
    m.layout.cell(done).record.write_text(json.dumps(rec))
    _dead_start(m, killed)  # started by job local-1 and killed: a node failure, to retry
    m.path.write_bytes(GARBAGE)
    st = run("-m", "rsscale.status", str(tmp_path), "--json")
    assert st.returncode == 0 and str(m.path) in st.stderr, st.stderr  # was exit 2: move it aside by hand
    assert {r["cell_id"]: r["status"] for r in json.loads(st.stdout)}[done] == "completed"
    stderr = []
    for _ in range(2):  # the second run finds no manifest at all (set aside): the same plan
        proc = run("-m", "rsscale.sweep", *TINY, f"hydra.sweep.dir={tmp_path}", "sweep.dry_run=true")
        assert proc.returncode == 0, proc.stderr
        assert "0 new, 0 to resume, 1 to retry; skipped: 1 completed" in proc.stdout, proc.stdout
        stderr.append(proc.stderr)
    assert f"{m.path} is unreadable" in stderr[0] and "set aside as manifest.json.garbage-1" in stderr[0]
    assert (tmp_path / "manifest.json.garbage-1").read_bytes() == GARBAGE
