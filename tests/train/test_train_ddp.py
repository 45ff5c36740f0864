"""DDP on the CPU (gloo): 2 processes at the same global batch follow the 1-process run, and a
preemption signal seen by one rank only is acted on by both at the same step."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import TINY, finish, free_port, load_ckpt, start_run, tiny_cell

from rsscale.layout import RECORD_NAME
from rsscale.train.loop import train

pytestmark = pytest.mark.slow

# The recipe is pinned: per-rank BatchNorm statistics (no SyncBN on CPU) make the 2-process curve
# only approximately the 1-process one, and a hotter LR amplifies the gap.
DDP = TINY + [
    "runtime.deterministic=true",
    "runtime.checkpoint_every_steps=100",
    "recipe.lr_base=0.2",
    "recipe.warmup_epochs=0.3",
]


def run_ddp(tmp_path, run_dir, overrides, preempt_rank=None, preempt_step=3) -> list[dict]:
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": "2",
        }
        if rank == preempt_rank:
            env["TEST_PREEMPT_AT_STEP"] = str(preempt_step)
        log = tmp_path / f"{run_dir.name}-rank{rank}.log"
        procs.append(start_run(tmp_path, run_dir, overrides, env, log=log))
    return [finish(p, timeout=180) for p in procs]


def test_two_processes_follow_one_process_and_survive_a_one_rank_preemption(tmp_path):
    single = train(tiny_cell(*DDP[len(TINY) :]), tmp_path / "single")
    overrides = DDP + ["runtime.tasks=2"]

    run_dir = tmp_path / "ddp"
    results = run_ddp(tmp_path, run_dir, overrides)
    assert [r["returncode"] for r in results] == [0, 0]
    rank0, rank1 = results
    # the epoch loss is the global-batch loss on every rank (all-reduced), not rank 0's half
    assert [h["train_loss"] for h in rank0["history"]] == [h["train_loss"] for h in rank1["history"]]
    assert rank0["final"] == rank1["final"]
    record = json.loads((run_dir / RECORD_NAME).read_text())
    assert record["status"] == "completed"
    assert record["provenance"]["world_size"] == 2
    # torch's SyncBatchNorm raises on CPU input: CPU runs keep per-rank BN statistics (batch 32
    # here instead of 64), so the curves agree only approximately. Measured: 0.6% / 5% apart on
    # the two epochs, while a run at 2x the LR (what summed instead of averaged gradients would
    # give) is 18% / 70% away.
    assert record["provenance"]["sync_bn"] is False
    ddp_loss = [h["train_loss"] for h in record["history"]]
    one_loss = [h["train_loss"] for h in single["history"]]
    assert ddp_loss == pytest.approx(one_loss, rel=0.1)
    assert record["final"]["top1"] == pytest.approx(single["final"]["top1"], abs=0.1)
    assert [h["step"] for h in record["history"]] == [h["step"] for h in single["history"]]

    # SIGUSR2 reaches rank 1 only: both ranks checkpoint at the same step boundary and stop
    pre_dir = tmp_path / "preempted"
    results = run_ddp(tmp_path, pre_dir, overrides, preempt_rank=1)
    assert [(r["returncode"], r["status"]) for r in results] == [(3, "preempted"), (3, "preempted")]
    assert json.loads((pre_dir / RECORD_NAME).read_text())["status"] == "preempted"
    assert load_ckpt(pre_dir)["step"] == 3
    results = run_ddp(tmp_path, pre_dir, overrides)
    assert [r["returncode"] for r in results] == [0, 0]
    resumed = json.loads((pre_dir / RECORD_NAME).read_text())
    assert resumed["status"] == "completed" and resumed["attempts"] == 2
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx(ddp_loss, rel=1e-9)
    a, b = load_ckpt(run_dir)["model"], load_ckpt(pre_dir)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["final"] == record["final"]
