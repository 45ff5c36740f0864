"""Where and how a run computes: the device, the autocast dtype, threads, determinism and seed.

`setup_runtime(runtime)` (the typed `runtime:` group) is the first thing a run does; its `RunEnv`
is what every later component (data, model, train step, evaluator) is given instead of re-reading
the runtime config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rsscale.config import RuntimeConfig
from rsscale.train import distributed as D


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("runtime.device=cuda but no CUDA device is visible")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16/AMX CPUs train 2x faster under bf16 autocast; older ones are slower in bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and "avx512_bf16" in _cpu_flags()
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return ""


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA and on CPUs with native bf16; `auto` falls back to fp32 elsewhere."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" or cpu_has_fast_bf16() else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


@dataclass(frozen=True)
class RunEnv:
    """The process's place in the run: its rank, device and autocast dtype."""

    dist: D.DistInfo
    device: torch.device
    amp_dtype: torch.dtype | None
    seed: int

    @property
    def world(self) -> int:
        return self.dist.world_size

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def peak_mem_bytes(self) -> int:
        """Peak device memory since `reset_peak_memory` (CUDA), else the process's peak RSS."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)


def setup_runtime(rt: RuntimeConfig) -> RunEnv:
    """Process group, device, threads, determinism flags and the global seed, in that order."""
    dist_info = D.init_distributed("cuda" if rt.device != "cpu" and torch.cuda.is_available() else "cpu")
    device = pick_device(rt.device, dist_info.local_rank)
    if rt.threads:
        torch.set_num_threads(int(rt.threads))
    if rt.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed = int(rt.seed)
    torch.manual_seed(seed)
    return RunEnv(dist_info, device, autocast_dtype(rt.precision, device), seed)
