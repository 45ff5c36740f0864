"""`runtime.compile=auto`: compile a cell only when its training time pays for the compilation.

torch.compile (inductor) makes the step faster but costs a fixed compile time first, for the train
graph and again for the eval graph. Measured with `python -m rsscale.bench --compile default
--threads 1` on the default cell (RS-26 x0.25, small stem, 20 px, batch 128, bf16, channels_last)
on a 2-core AMD EPYC (AVX512-BF16) box shared with other jobs (load ~10): the compiled train step
was 1.41x eager and inference 1.45x, after 222 s (train graph) + 132 s (eval graph) of compilation;
eager ran at ~6e10 FLOP/s per thread. A 3-epoch default cell trains in ~7 min on one thread, so
compiling does not pay there; a cell of hours does. The rule: compile when the expected training
time (the cost model's FLOPs over the device's eager throughput) is at least
`runtime.compile_payback` (default 10) times the expected compile time.

The CUDA figures are assumptions, not measurements (no GPU was available when this was written):
compile ~60 s for a ResNet-RS, eager throughput ~1e14 FLOP/s. `runtime.compile=true|false`
overrides the rule; the decision and its reason go into the run record.
"""

from __future__ import annotations

import os

import torch

from rsscale.config import RuntimeConfig

# device type -> (eager training FLOP/s per thread or per GPU, compile seconds of train + eval graph)
EAGER_FLOPS = {"cpu": 6e10, "cuda": 1e14}
COMPILE_S = {"cpu": 350.0, "cuda": 60.0}


def expected_train_s(train_flops: float, device: torch.device, workers: int) -> float:
    """Training seconds expected for `train_flops` (3 x forward FLOPs x images x epochs), eager."""
    return train_flops / (EAGER_FLOPS.get(device.type, EAGER_FLOPS["cpu"]) * max(1, workers))


def decide_compile(runtime: RuntimeConfig, device: torch.device, train_flops: float) -> tuple[bool, str]:
    """(compile?, why) for `runtime.compile` (true | false | auto) of a cell of `train_flops` on `device`."""
    choice = runtime.compile
    if choice is True or choice is False:
        return bool(choice), f"runtime.compile={str(choice).lower()}"
    payback = float(runtime.compile_payback)
    if device.type == "cpu":
        workers = int(runtime.threads or _env_threads() or torch.get_num_threads() or 1)
    else:
        workers = int(runtime.tasks)
    train_s = expected_train_s(train_flops, device, workers)
    compile_s = COMPILE_S.get(device.type, COMPILE_S["cpu"])
    on = train_s >= payback * compile_s
    sign = ">=" if on else "<"
    return (
        on,
        f"auto: expected training {train_s:.0f} s {sign} {payback:g} x compile {compile_s:.0f} s "
        f"on {device.type}",
    )


def _env_threads() -> int | None:
    v = os.environ.get("OMP_NUM_THREADS")
    return int(v) if v and v.isdigit() else None
