"""The ResNet-RS recipe as pure functions: LR schedule, weight-decay groups, optimiser.

Kept free of training state so each piece is testable against the paper's numbers. The `recipe:`
group's defaults, checks and Table 8 live in one place, `rsscale.config` (`RecipeConfig`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rsscale.config import LR_SCHEDULES, RecipeConfig

STEP_MILESTONES = (0.3, 0.6, 0.8)  # the classic step schedule: x0.1 at 30/60/80% of training


def peak_lr(lr_base: float, global_batch: int) -> float:
    """Linear scaling: the paper's 0.1 x batch / 256 (1.6 at batch 4096)."""
    return lr_base * global_batch / 256


def lr_at(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    peak: float,
    schedule: str = "cosine",
) -> float:
    """LR after `step` optimiser steps: linear warmup from ~0, then cosine to 0 or the step schedule."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return peak * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "step":
        frac = step / max(1, total_steps)
        return peak * 0.1 ** sum(frac >= m for m in STEP_MILESTONES)
    raise ValueError(f"recipe.lr_schedule={schedule!r}: allowed {', '.join(LR_SCHEDULES)}")


def param_groups(model: nn.Module, weight_decay: float, wd_on_bn: bool = False) -> list[dict]:
    """Decay everything but BatchNorm gamma/beta (conv, SE weights and biases, FC weight and bias)."""
    bn_params: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            bn_params.update(id(p) for p in m.parameters(recurse=False))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if id(p) in bn_params and not wd_on_bn else decay).append(p)
    groups: list[dict] = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module, recipe: RecipeConfig, lr: float, device: torch.device
) -> torch.optim.Optimizer:
    """SGD with momentum 0.9, coupled L2 as in TF; the fused kernel where torch has one."""
    groups = param_groups(model, recipe.weight_decay, recipe.wd_on_bn)
    lr, momentum, nesterov = float(lr), float(recipe.momentum), bool(recipe.nesterov)
    try:
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
