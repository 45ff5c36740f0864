"""GPU cells through the real single-node SLURM cluster, which declares 4 GPUs without having any
(scripts/slurm_up.sh: gres/gpu on placeholder devices). The scheduler allocates, limits and accounts
the GPUs for real and tells each task which ones it got; the cells train on the CPU
(runtime.device=cpu, DDP over gloo). No mocks.

Whole file: about a minute on a quiet 2-core machine, most of it the one preempted 2-task cell.
"""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from rsscale.launch.resources import ResourceError, resource_class
from rsscale.launch.slurm import partition_gpus, with_node_limits
from rsscale.layout import SweepLayout
from tests.launch.sweep_helpers import records, sweep
from tests.launch.test_sweep_slurm import (
    EXACT,
    SLURM,
    all_terminal,
    attempt_lines,
    job_ids,
    jobs_ended,
    jobs_named,
    manifest,
    sweeps,  # noqa: F401 - the fixture that cancels a test's jobs
    wait_checkpoint,
    wait_status,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The test cluster's profile: 4 GPUs on the node, one core per GPU (the node has 8 "CPUs")
GPU = [*SLURM, "cluster.gpus_per_node=4", "cluster.cpus_per_gpu=1", "runtime.device=cpu"]
# 32 steps of a 2-rank cell, a checkpoint every 2: time to preempt it after its first checkpoint.
# A time limit >= 60 min, so that submitit takes the USR2 as a preemption (not a time-out).
PREEMPTIBLE = [
    *EXACT,
    "data.size=1024",
    "recipe.epochs=2",
    "runtime.checkpoint_every_steps=2",
    "cluster.min_time_min=60",
]


def alloc_tres(job: str) -> list[str]:
    """sacct's AllocTRES of every run of a job (requeues keep one record per run)."""
    out = subprocess.run(
        ["sacct", "-D", "-X", "-n", "-P", "-j", job, "-o", "AllocTRES"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_the_test_cluster_declares_four_gpus(slurm_cluster):
    assert partition_gpus("debug") == 4
    node = subprocess.run(
        ["scontrol", "show", "node", "localhost"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "gres/gpu=4" in node and "DRAIN" not in node, node


def test_two_gpu_ddp_cell_gets_one_gpu_per_rank_and_resumes_after_preemption(
    slurm_cluster,
    sweeps,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    """One cell, runtime.tasks=2 on a 4-GPU profile: one job, one node, two GPUs, two DDP ranks.
    A USR2 mid-training (what SLURM sends before a preemption or time limit) checkpoints it; the job
    requeues itself and the cell resumes and completes, on two GPUs again."""
    d = tmp_path / "gpu"
    sweeps.append(d)
    out = sweep(d, *GPU, *PREEMPTIBLE, "runtime.tasks=2", "sweep.detach=true", grid=None).stdout
    assert "submitted 1 cells" in out, out
    ((cid, entry),) = manifest(d)["cells"].items()
    assert entry["resource_class"].startswith("n1-t2-2g-c1-"), entry  # 2 GPUs asked for, not the node's 4
    (job,) = job_ids(d)
    # the sbatch lines submitit wrote: one task per GPU, on one node
    script = (SweepLayout(d).logs / job / f"{job}_submission.sh").read_text()
    sbatch = set(re.findall(r"^#SBATCH (.+)$", script, re.M))
    assert {"--gpus-per-node=2", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1"} <= sbatch, sbatch
    assert not any(s.startswith("--gres") for s in sbatch)

    wait_checkpoint(d, cid, timeout=120)
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60)
    rows = wait_status(d, all_terminal, 240, "preempted GPU cell completes")
    assert rows[cid]["status"] == "completed" and rows[cid]["attempts"] == 2, rows[cid]
    lines = attempt_lines(d, cid)
    assert [a["job_id"] for a in lines] == [job, job] and [a["resume"] for a in lines] == [False, True]
    (state,) = jobs_ended([job]).values()
    assert state.state == "COMPLETED" and state.previous == ("REQUEUED",)
    # accounting: both runs held two GPUs
    tres = alloc_tres(job)
    assert len(tres) == 2 and all("gres/gpu=2" in t.split(",") for t in tres), tres

    rec = records(d)[cid]
    assert "resumed" in SweepLayout(d).cell(cid).train_log.read_text()
    assert rec["provenance"]["world_size"] == 2
    ranks = rec["provenance"]["ranks"]  # of the run that completed
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:  # the trainer's rank is the scheduler's; both share the job's two GPUs
        assert (r["SLURM_PROCID"], r["SLURM_LOCALID"]) == (str(r["rank"]), str(r["local_rank"]))
        assert r["local_rank"] == r["rank"] and r["SLURM_NODEID"] == "0" and r["device"] == "cpu"
    visible = {r["CUDA_VISIBLE_DEVICES"] for r in ranks}
    assert len(visible) == 1, ranks
    (cvd,) = visible
    gpus = cvd.split(",")
    assert len(set(gpus)) == 2 and set(gpus) <= {"0", "1", "2", "3"}, cvd
    assert ranks[0]["SLURM_JOB_GPUS"] == cvd


def test_more_gpus_than_the_node_has_fail_before_anything_is_submitted(slurm_cluster, tmp_path):
    """8 tasks on one node of 8 GPUs by the profile; the partition's node has 4 (sinfo's gres)."""
    d = tmp_path / f"badgpu-{uuid.uuid4().hex[:8]}"  # a job name no other run has used
    bad = ["cluster.gpus_per_node=8", "cluster.cpus_per_gpu=1", "runtime.tasks=8"]
    proc = sweep(d, *SLURM, *bad, grid=None, check=False, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "rsscale.sweep: error:" in err and "Traceback" not in err, err
    assert "runtime.tasks=8 asks for 8 GPUs on one node" in err and "cluster.gpus_per_node=8" in err, err
    assert "have at most 4 (gpu, cluster.max_gpus_per_node)" in err and "set cluster.gpus_per_node=4" in err
    assert not SweepLayout(d).manifest.exists() and not SweepLayout(d).cells.exists()
    assert jobs_named(f"rsscale-{d.name}") == []  # no sbatch reached the controller


def test_node_gpu_limits_come_from_sinfo(slurm_cluster):
    """The profile's `auto` limits as the driver reads them; a GPU type the partition lacks is refused."""
    profile = {"name": "slurm", "partition": "debug", "gpus_per_node": 4, "cpus_per_gpu": 1, "max_nodes": 1}
    limits = with_node_limits({**profile, "max_gpus_per_node": "auto", "cpus_per_node": "auto"})
    assert limits["max_gpus_per_node"] == 4 and limits["cpus_per_node"] == 8
    cell = {"runtime": {"tasks": 4}, **_TINY}
    assert resource_class(cell, limits).gpus_per_node == 4
    typed = with_node_limits({**profile, "gres": "gpu:a100", "max_gpus_per_node": "auto"})
    assert typed["max_gpus_per_node"] == 0
    with pytest.raises(ResourceError, match=r"partition debug .* have no gpu:a100 GPUs"):
        resource_class(cell, typed)
    # a CPU profile does not ask sinfo for GPUs
    assert with_node_limits({"gpus_per_node": 0, "max_gpus_per_node": "auto"})["max_gpus_per_node"] is None


_TINY = {
    "model": {"name": "resnet_rs", "depth": 26, "width": 0.25},
    "data": {"name": "synthetic", "size": 512, "num_classes": 10, "train_res": 16},
    "recipe": {"epochs": 1},
}
