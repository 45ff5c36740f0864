"""The train step, built once: autocast context, loss, backward and the optimiser step.

One definition shared by the train loop, the latency measurement in the run record and
`python -m rsscale.bench`, so the speed the study plots is the speed of the code that trains
(nanoGPT builds its autocast context once for the same reason).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


def autocast(device: torch.device | str, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """The autocast context of a run (a no-op context in fp32); reusable across steps."""
    device_type = torch.device(device).type
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=amp_dtype)


@dataclass
class TrainStep:
    """`forward_backward(x, y)` accumulates gradients; `optimizer_step()` applies and clears them.

    `model` is what runs forward (eager, compiled or DDP-wrapped); `scale` divides the loss for
    gradient accumulation.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    amp_dtype: torch.dtype | None
    scale: float = 1.0
    _ctx: contextlib.AbstractContextManager = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ctx = autocast(self.device, self.amp_dtype)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward under autocast, loss, backward; returns the (unscaled) loss, detached."""
        with self._ctx:
            loss = self.criterion(self.model(x), y)
        (loss / self.scale if self.scale != 1.0 else loss).backward()
        return loss.detach()

    def optimizer_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.forward_backward(x, y)
        self.optimizer_step()
        return loss

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        with self._ctx:
            return self.model(x)


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so wall-clock timings measure the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, synchronised on the device."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0
