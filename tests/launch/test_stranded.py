"""The last stranded paths (issue 25): garbage in any sweep file, storage failures, the way out.

Each test reproduced its defect on the code before the fix: real files, real subprocesses.
"""

from __future__ import annotations

import json
import os
import random
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
