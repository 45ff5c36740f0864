"""ResNet-RS (Bello et al. 2021, arXiv 2103.07579): bottleneck ResNet-D with squeeze-excitation.

Layout follows timm's ``resnet.py`` (``resnetrsNN``) so released weights map over with a few renames
(see ``timm_compat.py``); the reference is ``/work/shared/reference/resnet_rs.md`` section 1.

Width rule: every channel count ``c`` of the width-1.0 network (stem 32/32/64/64, stage bottleneck
widths 64/128/256/512) becomes ``scale_width(c, width)``: ``c * width`` rounded to the nearest multiple
of 8, at least 8, and bumped up by 8 if rounding lost more than 10% (timm's ``make_divisible``). The
study widths 0.25/0.5/1.0/1.5/2.0 are exact (no rounding happens: 32 * 0.25 = 8). Block outputs are
4x the bottleneck width, the SE reduction width is ``make_divisible(4f * se_ratio, 8)`` as in timm
(= f for the default 0.25) and the head is 4x the c5 bottleneck width.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation, StochasticDepth

from rsscale.config_schema import cell_fields, defaults

from .config import DEPTH_BLOCKS, DROP_PATH_SCHEDULES, STEMS, ResNetRSConfig, from_model_cfg

__all__ = [
    "DEPTH_BLOCKS",
    "STEMS",
    "DROP_PATH_SCHEDULES",
    "MODEL_CFG_DEFAULTS",
    "MODEL_CFG_KEYS",
    "ResNetRS",
    "ResNetRSConfig",
    "Bottleneck",
    "DropPath",
    "resnet_rs",
    "build_model",
    "validate_model_cfg",
    "scale_width",
    "make_divisible",
    "drop_path_rates",
]

STAGE_BASE_WIDTHS = (64, 128, 256, 512)
STEM_BASE_WIDTHS = (32, 32, 64)
EXPANSION = 4

# Defaults of the `model:` config group (docs/contracts.md), from the schema; `name` is checked separately.
MODEL_CFG_DEFAULTS: dict[str, Any] = {k: v for k, v in defaults(ResNetRSConfig).items() if k != "name"}
MODEL_CFG_KEYS = frozenset(cell_fields(ResNetRSConfig))


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Nearest multiple of `divisor` to `v`, at least `divisor`, not below `round_limit * v` (timm's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def scale_width(channels: int, width: float) -> int:
    """Channel count `channels` of the width-1.0 network under width multiplier `width` (module docstring)."""
    return make_divisible(channels * width, 8)


def drop_path_rates(blocks: Sequence[int], rate: float, schedule: str = "stage") -> list[list[float]]:
    """Per-block stochastic-depth rates, one list per stage (c2..c5).

    ``stage``: every block of stage cK (K = 2..5) gets ``rate * K / 5`` (the paper).
    ``linear``: timm's ramp ``rate * i / (n - 1)`` over the network's block index i of n blocks.
    """
    if schedule == "stage":
        return [[rate * (k + 2) / 5] * n for k, n in enumerate(blocks)]
    if schedule == "linear":
        total = sum(blocks)
        rates, i = [], 0
        for n in blocks:
            rates.append([rate * (i + j) / max(total - 1, 1) for j in range(n)])
            i += n
        return rates
    allowed = ", ".join(DROP_PATH_SCHEDULES)
    raise ValueError(f"model.drop_path_schedule={schedule!r} is unknown; allowed: {allowed}")


def validate_model_cfg(model_cfg: Mapping[str, Any], num_classes: int = 1000, in_chans: int = 3) -> None:
    """Raise the ValueError `build_model` would raise, without building anything."""
    from_model_cfg(model_cfg, num_classes, in_chans)


# ------------------------------------------------------------------------------------------------ modules


class DropPath(StochasticDepth):
    """torchvision's `StochasticDepth` in ``row`` mode (one Bernoulli draw per sample, scaled by 1/keep in
    training, identity in eval), with timm's attribute name ``drop_prob`` for the rate."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__(float(drop_prob), "row")

    @property
    def drop_prob(self) -> float:
        return self.p


def _bn(channels: int, eps: float, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


class Bottleneck(nn.Module):
    """Post-activation bottleneck.

    1x1(f) BN ReLU, 3x3(f, stride) BN ReLU, 1x1(4f) BN, SE, drop path, + shortcut, ReLU.
    """

    expansion = EXPANSION

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
        resnet_d: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        out_chs = width * EXPANSION
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False)
        self.bn1 = _bn(width, bn_eps, bn_momentum)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(width, bn_eps, bn_momentum)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, out_chs, 1, bias=False)
        self.bn3 = _bn(out_chs, bn_eps, bn_momentum)
        if se_ratio > 0:
            rd_chs = make_divisible(out_chs * se_ratio, 8, round_limit=0.0)  # timm's SE rounding
            # torchvision's SE: global average pool, 1x1 conv (bias), ReLU, 1x1 conv (bias), sigmoid gate;
            # its fc1/fc2 are timm's names, so released weights load unchanged
            self.se: nn.Module = SqueezeExcitation(out_chs, rd_chs)
        else:
            self.se = nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.act3 = nn.ReLU(inplace=True)

        self.downsample: nn.Module | None = None
        if stride != 1 or in_chs != out_chs:
            if resnet_d:  # ResNet-D: average-pool, then a 1x1 conv at stride 1
                pool = (
                    nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                    if stride != 1
                    else nn.Identity()
                )
                conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
            else:  # classic ResNet: strided 1x1 conv
                pool = nn.Identity()
                conv = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)
            self.downsample = nn.Sequential(
                OrderedDict(pool=pool, conv=conv, bn=_bn(out_chs, bn_eps, bn_momentum))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = self.drop_path(self.se(x))
        return self.act3(x + shortcut)


def _conv_bn_act(name: str, in_chs: int, out_chs: int, stride: int, eps: float, mom: float) -> list:
    return [
        (f"conv{name}", nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)),
        (f"bn{name}", _bn(out_chs, eps, mom)),
        (f"act{name}", nn.ReLU(inplace=True)),
    ]


class ResNetRS(nn.Module):
    """ResNet-RS of one `ResNetRSConfig` (validated when it is constructed), like nanoGPT's ``GPT(config)``;
    `resnet_rs(...)` (keywords) and `build_model(model_cfg, num_classes, in_chans)` (a cell dict) build one.

    Modules: ``stem`` (conv1..conv3 [+ conv4 replacing the max-pool]), ``layer1``..``layer4`` (stages c2..c5,
    timm's names), ``global_pool``, ``dropout``, ``fc``.
    Attributes: ``num_classes``, ``blocks_per_stage`` (c2..c5), ``stage_widths`` (bottleneck widths f;
    stage outputs are 4f), ``stem_widths``, ``feature_dim`` (pooled feature size = 4 * f_c5),
    ``drop_path_rates`` (per stage, per block), ``depth`` (label), ``width``.
    """

    # the stages, added by name in __init__ (declared for the type checker)
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, cfg: ResNetRSConfig):
        super().__init__()
        self.cfg = cfg
        width, in_chans, stem = cfg.width, cfg.in_chans, cfg.stem
        bn_eps, bn_momentum = float(cfg.bn_eps), float(cfg.bn_momentum)
        self.depth = cfg.depth
        self.width = float(width)
        self.num_classes = cfg.num_classes
        self.in_chans = in_chans
        self.stem_type = stem
        self.blocks_per_stage = cfg.stage_blocks
        self.stem_widths = tuple(scale_width(c, width) for c in STEM_BASE_WIDTHS)
        self.stage_widths = tuple(scale_width(c, width) for c in STAGE_BASE_WIDTHS)
        self.feature_dim = self.stage_widths[-1] * EXPANSION
        self.drop_path_rates = drop_path_rates(
            self.blocks_per_stage, float(cfg.drop_path_rate), cfg.drop_path_schedule
        )

        # Stem. released: deep stem (3x3/2, 3x3, 3x3) + 3x3/2 conv in place of the max-pool (stride 4);
        # paper: deep stem only (stride 2), c2 downsamples; small: stride-1 deep stem, c2 at stride 1.
        s1, s2, s3 = self.stem_widths
        first_stride = 1 if stem == "small" else 2
        layers = [
            *_conv_bn_act("1", in_chans, s1, first_stride, bn_eps, bn_momentum),
            *_conv_bn_act("2", s1, s2, 1, bn_eps, bn_momentum),
            *_conv_bn_act("3", s2, s3, 1, bn_eps, bn_momentum),
        ]
        if stem == "released":
            layers += _conv_bn_act("4", s3, s3, 2, bn_eps, bn_momentum)
        self.stem = nn.Sequential(OrderedDict(layers))

        in_chs = s3
        for k, (n, f) in enumerate(zip(self.blocks_per_stage, self.stage_widths)):
            stage_stride = 2 if (k > 0 or stem == "paper") else 1
            stage = []
            for i in range(n):
                stage.append(
                    Bottleneck(
                        in_chs,
                        f,
                        stride=stage_stride if i == 0 else 1,
                        se_ratio=float(cfg.se_ratio),
                        drop_path=self.drop_path_rates[k][i],
                        resnet_d=cfg.resnet_d,
                        bn_eps=bn_eps,
                        bn_momentum=bn_momentum,
                    )
                )
                in_chs = f * EXPANSION
            self.add_module(f"layer{k + 1}", nn.Sequential(*stage))

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(float(cfg.dropout))
        self.fc = nn.Linear(self.feature_dim, cfg.num_classes)
        self.init_weights(cfg.zero_init_last_bn)

    @torch.no_grad()
    def init_weights(self, zero_init_last_bn: bool = True) -> None:
        """Convs: He normal (fan out); BN: gamma 1, beta 0 (last BN of each block gamma 0); fc: N(0, 0.01)."""
        if self.fc.weight.is_meta:  # shapes only (counting): nothing to initialise, and it is slow on meta
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last_bn:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
        self._init_fc()

    @torch.no_grad()
    def _init_fc(self) -> None:
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer by a freshly initialised one with `num_classes` outputs."""
        w = self.fc.weight
        self.num_classes = num_classes
        self.fc = nn.Linear(self.feature_dim, num_classes, device=w.device, dtype=w.dtype)
        self._init_fc()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        return self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------------------------- builders


def resnet_rs(
    depth: int = 50,
    width: float = 1.0,
    num_classes: int = 1000,
    in_chans: int = 3,
    **fields: Any,
) -> ResNetRS:
    """Build ResNet-RS-`depth` (or explicit ``blocks=[c2, c3, c4, c5]``; depth is then only a label);
    `fields` are the other `ResNetRSConfig` fields (se_ratio, stem, drop_path_rate, ...).

    Raises ValueError naming the field for any argument outside what is allowed. Builds on the current
    default device, so ``with torch.device("meta"): resnet_rs(420)`` costs no memory.
    """
    cfg = ResNetRSConfig(depth=depth, width=width, num_classes=num_classes, in_chans=in_chans, **fields)
    return ResNetRS(cfg)


def build_model(model_cfg: Mapping[str, Any] | ResNetRSConfig, num_classes: int, in_chans: int) -> ResNetRS:
    """Build from the `model:` dict of docs/contracts.md (or a `ResNetRSConfig`).

    Missing keys take the defaults, unknown keys raise ValueError, `name` must be absent or "resnet_rs".
    """
    return ResNetRS(from_model_cfg(model_cfg, num_classes, in_chans))
