"""The sweep-directory layout and the status vocabularies: one owner each, used by the modules that write."""

from __future__ import annotations

import json

import pytest

from rsscale import states
from rsscale.launch import slurm
from rsscale.launch.cell_files import sync_config
from rsscale.launch.cores import ThreadFollower, write_shares
from rsscale.launch.manifest import Manifest, ManifestError, count_attempts, last_attempt
from rsscale.launch.runner import CellRunner
from rsscale.layout import CellLayout, StudyLayout, SweepLayout
from rsscale.train import record_file


def test_layout_spells_the_contract(tmp_path):
    """docs/contracts.md, 'Sweep directory' and 'Study directory': the one place tests spell the names."""
    s = SweepLayout(tmp_path)
    c = s.cell("d26-w0.25-r16-e1-0123abcd")
    rel = {k: str(getattr(s, k).relative_to(tmp_path)) for k in ("manifest", "cells", "logs", "report")}
    assert rel == {"manifest": "manifest.json", "cells": "cells", "logs": "logs", "report": "report"}
    assert s.inductor_cache == tmp_path / "cache" / "inductor"
    assert s.submitit_folder == tmp_path / "logs" / "%j"
    assert s.local_submitit_folder == tmp_path / "logs"
    assert s.driver_lock == tmp_path / ".driver.lock"
    assert c.dir == tmp_path / "cells" / "d26-w0.25-r16-e1-0123abcd"
    names = {k: getattr(c, k).name for k in ("config", "record", "checkpoint", "checkpoint_prev")}
    names |= {k: getattr(c, k).name for k in ("attempts", "threads", "train_log")}
    assert names == {
        "config": "config.json",
        "record": "record.json",
        "checkpoint": "checkpoint.pt",
        "checkpoint_prev": "checkpoint.prev.pt",
        "attempts": "attempts.jsonl",
        "threads": "threads.json",
        "train_log": "train.log",
    }
    assert all(p.parent == c.dir for p in c.checkpoints) and c.checkpoints[0] == c.checkpoint
    st = StudyLayout(tmp_path)
    assert st.cell("trial-0000").record == tmp_path / "cells" / "trial-0000" / "record.json"
    assert [p.name for p in (st.meta, st.journal, st.workers, st.jobs, st.best)] == [
        "study.json",
        "journal.log",
        "workers.jsonl",
        "jobs.jsonl",
        "best.json",
    ]
    assert st.tuned_recipe == tmp_path / "recipe" / "tuned.yaml"
    assert st.worker_log(3) == tmp_path / "logs" / "worker3.log"
    assert SweepLayout(tmp_path) == SweepLayout(str(tmp_path)) and CellLayout(c.dir) == c


def test_writers_put_their_files_where_the_layout_says(tmp_path):
    s = SweepLayout(tmp_path)
    m = Manifest(tmp_path)
    m.add_cell("c1", "h" * 16, {"model.depth": 26}, None, "small")
    m.save()
    assert m.path == s.manifest and s.manifest.is_file()
    assert m.cell_dir("c1") == s.cell("c1").dir
    assert json.loads(s.manifest.read_text())["cells"]["c1"]["cell_dir"] == "cells/c1"
    assert Manifest.load(tmp_path).cells["c1"]["hash"] == "h" * 16
    assert sync_config(s.cell("c1").dir, {"runtime": {"seed": 0}}) is None
    assert json.loads(s.cell("c1").config.read_text()) == {"runtime": {"seed": 0}}
    write_shares(tmp_path, {"c1": 3}, {})
    assert json.loads(s.cell("c1").threads.read_text()) == {"threads": 3}
    assert ThreadFollower(s.cell("c1").dir).path == s.cell("c1").threads
    runner = CellRunner(str(tmp_path), "c1")
    assert runner.cell_dir == s.cell("c1").dir
    runner.log_attempt()
    runner.log_attempt()
    assert m.attempts("c1") == 2 and m.last_attempt("c1")["resume"] is False
    record_file.write_record(s.cell("c1").dir, {"status": "running"})
    assert s.cell("c1").record.is_file() and m.record("c1")["status"] == "running"
    assert m.layout.driver_lock == s.driver_lock
    with m.driver_lock():
        assert s.driver_lock.exists()


def test_attempt_lines_torn_and_missing(tmp_path):
    path = tmp_path / "attempts.jsonl"
    assert count_attempts(path) == 0 and last_attempt(path) is None
    path.write_text('{"pid": 1}\n\n{"pid": 2}\n{"pid": 3, "ho')  # a torn last line
    assert count_attempts(path) == 3
    assert last_attempt(path) == {"pid": 2}


def test_unreadable_manifest_names_the_file_and_the_reason(tmp_path):
    SweepLayout(tmp_path).manifest.write_text('{"grid": "g", "cells": [')
    with pytest.raises(ManifestError) as e:
        Manifest.load(tmp_path)
    assert e.value.path == SweepLayout(tmp_path).manifest
    assert "Expecting value" in e.value.reason and str(e.value.path) in str(e.value)
    SweepLayout(tmp_path).manifest.write_text('{"grid": "g", "cells": []}')
    with pytest.raises(ManifestError, match="no 'cells' object"):
        Manifest.load(tmp_path)


def test_status_vocabularies_are_consistent():
    assert set(states.TERMINAL) <= set(states.RECORD_STATUSES)
    assert not set(states.DERIVED_STATES) & set(states.RECORD_STATUSES)
    assert set(states.CELL_STATES) == set(states.DERIVED_STATES) | set(states.RECORD_STATUSES)
    for group in (states.OPEN_RECORD, states.WAITING, states.RETRIED):
        assert set(group) <= set(states.CELL_STATES), group
    # every error class SLURM can give is one a record may carry
    assert {slurm.classify(s) for s in slurm._ERROR_CLASS} <= set(states.ERROR_CLASSES)
    # the run record writes the same vocabularies (train/record_file.py)
    assert tuple(record_file.STATUSES) == states.RECORD_STATUSES
    assert tuple(record_file.ERROR_CLASSES) == states.ERROR_CLASSES


def test_local_executor_leaves_no_literal_job_id_folder(tmp_path):
    """The sweep's and the study's local executor: job files in logs/, no empty `logs/%j/` beside them."""
    from rsscale.launch.backends import local_executor

    ex = local_executor(tmp_path)
    ex.update_parameters(timeout_min=1)
    job = ex.submit(sum, [1, 2])
    assert job.result() == 3
    names = sorted(p.name for p in SweepLayout(tmp_path).logs.iterdir())
    assert not [n for n in names if "%" in n], names
    assert f"{job.job_id}_0_log.out" in names
