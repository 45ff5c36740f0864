"""EMA of weights and BN statistics, as TF ResNet-RS does; evaluation uses the EMA model."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Shadow copy updated as ema = d * ema + (1 - d) * model with d = min(decay, (1+t)/(10+t)).

    Covers parameters and floating buffers (BN running mean/var), so the EMA model is usable for
    evaluation without re-estimating BN statistics.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        t = self.updates
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        ema_state = self.module.state_dict()
        floats_e, floats_m = [], []
        for k, v in model.state_dict().items():
            e = ema_state[k]
            if v.dtype.is_floating_point:
                floats_e.append(e)
                floats_m.append(v.detach())
            else:
                e.copy_(v)
        torch._foreach_lerp_(floats_e, floats_m, 1.0 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.updates = state["updates"]
        self.module.load_state_dict(state["module"])
