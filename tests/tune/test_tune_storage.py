"""The journal survives the cluster's failure modes: a SIGKILLed lock holder, a torn last line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import optuna
import pytest

from rsscale.tune.storage import FlockLock, open_storage, repair_torn_tail
from tests.tune.tune_helpers import REPO, env, load

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_lock_held_by_a_sigkilled_worker_never_blocks_the_next(tmp_path):
    path = str(tmp_path / "journal.log")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from rsscale.tune.storage import FlockLock
            FlockLock({path!r}).acquire()
            print("locked", flush=True)
            time.sleep(600)
        """),
        ],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    t0 = time.monotonic()
    lock = FlockLock(path)
    lock.acquire()
    lock.release()
    assert time.monotonic() - t0 < 5  # no grace period to wait out (Optuna's locks wait 30 s)


def test_a_torn_last_line_is_cut_and_the_study_stays_loadable_and_writable(tmp_path):
    study = optuna.create_study(
        study_name=tmp_path.name, storage=open_storage(tmp_path), direction="maximize"
    )
    study.enqueue_trial({"x": 0.5})
    t = study.ask()
    t.suggest_float("x", 0, 1)
    study.tell(t, 0.9)
    journal = tmp_path / "journal.log"
    good = journal.read_bytes()
    with open(journal, "ab") as f:  # a worker killed in the middle of an append
        f.write(b'{"op_code":5,"worker_id":"dead","trial_id":0,"sta')
    assert load(tmp_path).best_value == 0.9  # readers skip the torn line
    study = optuna.load_study(study_name=tmp_path.name, storage=open_storage(tmp_path))
    t = study.ask()  # the next append cuts the torn line first
    t.suggest_float("x", 0, 1)
    study.tell(t, 0.1)
    assert journal.read_bytes().startswith(good)
    assert [tr.value for tr in load(tmp_path).trials] == [0.9, 0.1]  # plain Optuna loads it


def test_repair_keeps_a_complete_journal_untouched(tmp_path):
    p = tmp_path / "j"
    p.write_bytes(b'{"a":1}\n{"b":2}\n')
    assert repair_torn_tail(p) == 0 and p.read_bytes() == b'{"a":1}\n{"b":2}\n'
    p.write_bytes(b'{"a":1}\n{"b"')
    assert repair_torn_tail(p) == 4 and p.read_bytes() == b'{"a":1}\n'


def test_unknown_lock_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="tune.journal_lock='nfs': allowed flock, open"):
        open_storage(tmp_path, lock="nfs")
