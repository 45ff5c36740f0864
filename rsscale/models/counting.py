"""Parameter and FLOP counts. FLOPs are forward FLOPs per image = 2 x multiply-accumulates of the
convolutions and linear layers only (BN, activations, pooling, SE gating and additions are not counted),
which is how the ResNet-RS paper and timm's tables count them.

Counting runs on the meta device (shapes only), so it costs no real compute or memory even for
ResNet-RS-420 at 320 px.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import ResNetRSConfig, from_model_cfg
from .resnet_rs import resnet_rs

__all__ = ["count_params", "count_flops", "flops_by_module", "model_cost"]

# The ops whose FLOPs we count: convolutions and the matmul family (nn.Linear lowers to addmm / mm).
_CONV_OPS = {"convolution", "_convolution", "cudnn_convolution"}
_MATMUL_OPS = {"mm", "addmm", "bmm", "baddbmm", "_scaled_mm"}
_COUNTED_OPS = _CONV_OPS | _MATMUL_OPS


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers and not counted, as in timm)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _op_name(op: Any) -> str:
    # OpOverloadPacket str is "aten.convolution"; keep the bare name
    return str(op).split(".")[-1]


def flops_by_module(model: nn.Module, resolution: int, in_chans: int = 3) -> dict[str, int]:
    """Forward FLOPs (2 x MACs of conv + linear) of one image per module path ("" is the whole model).

    The model is not run on real data: its parameters and buffers are swapped for meta tensors of the
    same shapes (torch.func.functional_call), and the model is left unchanged (mode included).
    """
    meta_state = {
        name: torch.empty_like(t, device="meta")
        for name, t in list(model.named_parameters()) + list(model.named_buffers())
    }
    x = torch.empty(1, in_chans, resolution, resolution, device="meta")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            torch.func.functional_call(model, meta_state, (x,), tie_weights=False, strict=False)
    finally:
        model.train(was_training)
    out = {}
    for path, counts in counter.get_flop_counts().items():
        if path == "Global":
            continue
        # paths look like "ResNetRS.layer2.1"; drop the root class name
        name = path.split(".", 1)[1] if "." in path else ""
        out[name] = int(sum(n for op, n in counts.items() if _op_name(op) in _COUNTED_OPS))
    return out


def count_flops(model: nn.Module, resolution: int, in_chans: int = 3) -> int:
    """Forward FLOPs (2 x MACs of conv + linear) for one `in_chans` x `resolution` x `resolution` image."""
    return flops_by_module(model, resolution, in_chans)[""]


@functools.lru_cache(maxsize=256)
def _reduced_model(
    blocks: tuple[int, ...],
    width: float,
    stem: str,
    se_ratio: float,
    resnet_d: bool,
    num_classes: int,
    in_chans: int,
) -> nn.Module:
    # Blocks 2..n of a stage are identical (same shapes in and out), so the network with at most two
    # blocks per stage plus (n - 2) more copies of each stage's second block gives exact counts, and
    # RS-420 (139 blocks) costs as little as RS-26. Meta device: shapes only, no memory.
    with torch.device("meta"):
        return resnet_rs(
            blocks=[min(n, 2) for n in blocks],
            width=width,
            num_classes=num_classes,
            in_chans=in_chans,
            stem=stem,
            se_ratio=se_ratio,
            resnet_d=resnet_d,
        )


@functools.lru_cache(maxsize=8192)
def _reduced_cost(
    reduced: tuple[int, ...],
    width: float,
    stem: str,
    se_ratio: float,
    resnet_d: bool,
    resolution: int,
    num_classes: int,
    in_chans: int,
) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """Counts of the reduced network plus each stage's repeatable block; cached without the depth,
    so every depth of a grid shares one FLOP count per (width, resolution)."""
    model = _reduced_model(reduced, width, stem, se_ratio, resnet_d, num_classes, in_chans)
    flops = flops_by_module(model, resolution, in_chans)
    names = [f"layer{k + 1}.1" for k in range(len(reduced))]
    block_params = tuple(
        count_params(model.get_submodule(n)) if r == 2 else 0 for n, r in zip(names, reduced)
    )
    block_flops = tuple(flops.get(n, 0) if r == 2 else 0 for n, r in zip(names, reduced))
    return count_params(model), flops[""], block_params, block_flops


def _cost(
    blocks: tuple[int, ...],
    width: float,
    stem: str,
    se_ratio: float,
    resnet_d: bool,
    resolution: int,
    num_classes: int,
    in_chans: int,
) -> tuple[int, int]:
    reduced = tuple(min(n, 2) for n in blocks)
    params, total_flops, bp, bf = _reduced_cost(
        reduced, width, stem, se_ratio, resnet_d, resolution, num_classes, in_chans
    )
    for k, n in enumerate(blocks):
        if n > 2:
            params += (n - 2) * bp[k]
            total_flops += (n - 2) * bf[k]
    return params, total_flops


def model_cost(
    model_cfg: Mapping[str, Any] | ResNetRSConfig, resolution: int, num_classes: int, in_chans: int = 3
) -> dict[str, int]:
    """``{"params": ..., "flops_per_image": ...}`` of the model a `model:` config builds, at `resolution`.

    Validates the config (ValueError as `build_model`), builds on the meta device and caches by the
    fields that change the counts (blocks, width, stem, se_ratio, resnet_d) plus the other arguments.
    """
    cfg = from_model_cfg(model_cfg, num_classes=num_classes, in_chans=in_chans)
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 1:
        raise ValueError(f"resolution={resolution!r} is not allowed; give a positive integer (pixels)")
    params, flops = _cost(
        cfg.stage_blocks,
        float(cfg.width),
        cfg.stem,
        float(cfg.se_ratio),
        cfg.resnet_d,
        int(resolution),
        int(num_classes),
        int(in_chans),
    )
    return {"params": params, "flops_per_image": flops}
