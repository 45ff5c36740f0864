"""The last stranded paths (issue 25): garbage in any sweep file, storage failures, the way out.

Each test reproduced its defect on the code before the fix: real files, real subprocesses.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

from rsscale.config import compose
from rsscale.launch.grid import expand
from rsscale.launch.manifest import Manifest
from rsscale.launch.status import cell_rows
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
    assert row["attempts"] == 1
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

    from rsscale.sweep import done_line

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
    import shlex

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
