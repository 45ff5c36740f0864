"""The RunRecorder on its own: each status transition and the record on disk after it, the
exception -> status table, one finish per attempt (record and W&B), and the checkpoint state."""

from __future__ import annotations

import re

import pytest

import rsscale.train.recorder as recorder_mod
from rsscale.config import LoggerConfig
from rsscale.layout import RECORD_NAME
from rsscale.train.checkpoint import PreemptRequested
from rsscale.train.record_file import load_record, new_record, write_record
from rsscale.train.recorder import Diverged, Pruned, RunRecorder

CFG = {"model": {"depth": 26}, "runtime": {"seed": 0}, "logger": {"mode": "disabled"}}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


class FakeWandb:
    """Stands in for WandbRun: notes every call."""

    runs: list[FakeWandb] = []

    def __init__(self, logger_cfg, *, run_id, name, config, run_dir, group=None, enabled=True):
        self.run_id, self.name, self.enabled, self.error = run_id, name, enabled, None
        self.config = dict(config)
        self.calls = []
        FakeWandb.runs.append(self)

    def log(self, metrics, step=None):
        self.calls.append(("log", dict(metrics), step))

    def summary(self, metrics):
        self.calls.append(("summary", dict(metrics)))

    def finish(self, exit_code=0):
        self.calls.append(("finish", exit_code))


@pytest.fixture
def wandb(monkeypatch):
    FakeWandb.runs = []
    monkeypatch.setattr(recorder_mod, "WandbRun", FakeWandb)
    return FakeWandb.runs


@pytest.fixture
def writes(monkeypatch):
    """The statuses written to record.json, in order."""
    seen = []

    def counting(run_dir, record):
        seen.append(record["status"])
        write_record(run_dir, record)

    monkeypatch.setattr(recorder_mod, "write_record", counting)
    return seen


def started(run_dir, **kw) -> RunRecorder:
    rec = RunRecorder.load(run_dir, CFG, "cell-a", "h" * 16, **kw)
    logger = LoggerConfig(**CFG["logger"])
    rec.start(provenance_extra={"world_size": 1}, cost={"params": 10}, logger_cfg=logger, config=CFG)
    return rec


def entry(epoch: int) -> dict:
    return {"epoch": epoch, "step": 7 * epoch, "train_loss": 1.0 / epoch, "lr": 0.1, "images_per_s": 100.0,
            "epoch_s": 2.5}  # fmt: skip


def test_running_then_epochs_then_completed(tmp_path, wandb, writes):
    rec = started(tmp_path)
    disk = load_record(tmp_path)
    assert (disk["status"], disk["attempts"], disk["finished"]) == ("running", 1, None)
    assert disk["provenance"]["world_size"] == 1 and disk["provenance"]["wandb_run_id"] == rec.wandb_id
    assert disk["cost"] == {"params": 10}

    rec.end_epoch(entry(1), epochs=2)
    rec.end_epoch(entry(2), epochs=2)
    disk = load_record(tmp_path)
    assert [h["epoch"] for h in disk["history"]] == [1, 2] and disk["status"] == "running"
    assert disk["cost"]["train_time_s"] == 5.0

    rec.finish("completed", final={"top1": 0.9}, cost={"images_per_s": 100.0})
    disk = load_record(tmp_path)
    assert (disk["status"], disk["error_class"], disk["error"]) == ("completed", None, None)
    assert ISO.match(disk["finished"]) and disk["final"] == {"top1": 0.9}
    assert disk["cost"] == {"params": 10, "train_time_s": 5.0, "images_per_s": 100.0}
    assert writes == ["running", "running", "running", "completed"]
    (wb,) = wandb
    assert [c[0] for c in wb.calls] == ["log", "log", "summary", "summary", "finish"]
    assert wb.calls[-1] == ("finish", 0) and wb.calls[0][2] == 7  # epoch logs at the epoch's step
    # the cell's identity in the W&B run's config and summary: the analysis matches it to the sweep's row
    assert (wb.config["cell_id"], wb.config["cell_hash"]) == ("cell-a", "h" * 16)
    assert wb.calls[2][1]["cell_hash"] == "h" * 16 and wb.calls[2][1]["final/top1"] == 0.9


@pytest.mark.parametrize(
    ("exc", "error_class", "error"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate"), "oom", "RuntimeError: CUDA out of memory."),
        (MemoryError(), "oom", "MemoryError: "),
        (ValueError("bad config"), "code_error", "ValueError: bad config"),
    ],
)
def test_an_exception_fails_the_run_and_is_raised(tmp_path, wandb, exc, error_class, error):
    rec = started(tmp_path)
    with pytest.raises(type(exc)), rec:
        raise exc
    disk = load_record(tmp_path)
    assert (disk["status"], disk["error_class"]) == ("failed", error_class)
    assert disk["error"].startswith(error) and ISO.match(disk["finished"])
    assert wandb[0].calls == [("finish", 1)]


def test_divergence_is_a_result_not_a_crash(tmp_path, wandb):
    rec = started(tmp_path)
    with rec:
        raise Diverged("loss is not finite at step 3")
    disk = load_record(tmp_path)
    assert (disk["status"], disk["error_class"]) == ("diverged", "diverged")
    assert disk["error"] == "loss is not finite at step 3" and disk["finished"] and disk["final"] == {}
    assert wandb[0].calls == [("finish", 1)]


def test_pruning_is_a_result_not_a_crash(tmp_path, wandb):
    rec = started(tmp_path)
    rec.end_epoch(entry(1), epochs=3)
    with rec:
        raise Pruned("median pruner at epoch 1")
    disk = load_record(tmp_path)
    assert (disk["status"], disk["error_class"], disk["error"]) == (
        "pruned",
        None,
        "median pruner at epoch 1",
    )
    assert disk["finished"] and len(disk["history"]) == 1
    assert wandb[0].calls[-1] == ("finish", 0)


@pytest.mark.parametrize("exc", [PreemptRequested("signal"), SystemExit(0), KeyboardInterrupt()])
def test_preemption_is_recorded_unfinished_and_raised(tmp_path, wandb, exc):
    rec = started(tmp_path)
    with pytest.raises(type(exc)), rec:
        raise exc
    disk = load_record(tmp_path)
    assert (disk["status"], disk["error_class"], disk["error"], disk["finished"]) == (
        "preempted",
        "preempted",
        None,
        None,
    )
    assert wandb[0].calls == [("finish", 1)]


def test_one_finish_per_attempt(tmp_path, wandb, writes):
    """The hand-over records `preempted`, then submitit's handler exits: no second status."""
    rec = started(tmp_path)
    rec.finish("preempted")
    with pytest.raises(SystemExit), rec:
        raise SystemExit(0)
    rec.finish("failed", error=RuntimeError("late"))
    assert writes == ["running", "preempted"]
    assert load_record(tmp_path)["status"] == "preempted"
    assert wandb[0].calls == [("finish", 1)]

    again = started(tmp_path)  # the requeued attempt starts over: running, attempt 2
    assert load_record(tmp_path)["attempts"] == 2 and again.wandb_id == rec.wandb_id
    again.finish("completed", final={})
    assert load_record(tmp_path)["status"] == "completed"


def test_only_the_main_rank_writes(tmp_path, wandb):
    rec = started(tmp_path, is_main=False)
    rec.end_epoch(entry(1), epochs=1)
    rec.finish("completed", final={})
    assert not (tmp_path / RECORD_NAME).exists()
    assert rec.record["status"] == "completed" and not wandb[0].enabled


def test_a_record_of_another_config_is_refused(tmp_path):
    write_record(tmp_path, new_record(CFG, "cell-a", "0" * 16))
    with pytest.raises(ValueError, match="holds a run of another config"):
        RunRecorder.load(tmp_path, CFG, "cell-a", "h" * 16)


def test_an_unreadable_record_starts_a_new_one(tmp_path):
    (tmp_path / RECORD_NAME).write_text("{not json")
    rec = RunRecorder.load(tmp_path, CFG, "cell-a", "h" * 16)
    assert rec.record["cell_hash"] == "h" * 16 and rec.record["attempts"] == 0


def test_history_and_wandb_id_travel_in_the_checkpoint(tmp_path, wandb):
    rec = started(tmp_path)
    rec.end_epoch(entry(1), epochs=2)
    state = rec.state_dict()
    assert state == {"history": [entry(1)], "wandb_run_id": rec.wandb_id, "cell_hash": "h" * 16}

    other = RunRecorder.load(tmp_path / "elsewhere", CFG, "cell-a", "h" * 16)
    other.load_state_dict(state)
    assert other.history == [entry(1)] and other.wandb_id == rec.wandb_id
    other.restart()
    assert other.history == []
