"""torch.distributed from the SLURM/submitit environment (no torchrun): one task per GPU."""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_world() -> DistInfo:
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    try:  # inside a submitit job (local or SLURM): its view of the tasks
        import submitit

        job = submitit.JobEnvironment()
        return DistInfo(job.global_rank, job.num_tasks, job.local_rank)
    except (RuntimeError, ImportError, KeyError):
        pass
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def init_distributed(device_type: str) -> DistInfo:
    """Initialise the process group when several tasks run this cell; a no-op for one task.

    Under submitit, TorchDistributedEnvironment exports MASTER_ADDR/PORT, RANK and WORLD_SIZE from
    the SLURM variables; elsewhere the usual env:// variables are used as they are.
    """
    info = _env_world()
    if not info.enabled or dist.is_initialized():
        return info
    if "MASTER_ADDR" not in os.environ:
        try:
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"{info.world_size} tasks but no MASTER_ADDR and no SLURM job: {e}") from e
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    global _CONTROL_GROUP
    # Control flags (preemption, time-based checkpoints) are agreed on every step over a CPU group,
    # so that NCCL runs do not pay a device sync for them.
    _CONTROL_GROUP = dist.new_group(backend="gloo") if backend != "gloo" else None
    return info


_CONTROL_GROUP = None


def any_across_ranks(*flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over all ranks (a no-op for one process).

    Decisions that end in a collective (a checkpoint's barrier, a preemption hand-over) must be
    taken by every rank at the same step: a signal or a wall clock seen by one rank only would
    otherwise leave the ranks in different collectives, a deadlock.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_CONTROL_GROUP)
    return tuple(bool(v) for v in t.tolist())


# What the scheduler told each rank, recorded beside the rank the trainer took: on a cluster the GPU
# a rank trains on follows from these (its local rank indexes the node's CUDA_VISIBLE_DEVICES).
_PLACEMENT_ENV = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS")


def rank_placements(info: DistInfo, device: torch.device) -> list[dict]:
    """Every rank's {rank, local_rank, host, device, SLURM_PROCID, ...}, ordered by rank (one collective)."""
    mine = {
        "rank": info.rank,
        "local_rank": info.local_rank,
        "host": socket.gethostname(),
        "device": str(device),
        **{k: os.environ.get(k) for k in _PLACEMENT_ENV},
    }
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [mine]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, mine, group=_CONTROL_GROUP)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
