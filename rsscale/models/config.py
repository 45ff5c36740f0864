"""`ResNetRSConfig`: the `model:` config group as one dataclass, its defaults and checks in one place.

Like nanoGPT's ``GPTConfig``: the model takes the whole object (``ResNetRS(cfg)``). The cell config's
``model:`` dict (docs/contracts.md) maps onto it field by field (`from_model_cfg`); ``num_classes``
and ``in_chans`` come from the data, not from the config group. Construction validates: a bad value
raises ValueError naming the field (``model.depth=37 is not a ResNet-RS depth; ...``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rsscale.config_schema import CELL, from_mapping

# Blocks per stage (c2, c3, c4, c5); reference table, section 1.
DEPTH_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    26: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    270: (4, 29, 53, 4),
    300: (4, 36, 54, 4),
    350: (4, 36, 72, 4),
    400: (6, 48, 72, 6),
    420: (4, 44, 87, 4),
}
STEMS = ("released", "paper", "small")
DROP_PATH_SCHEDULES = ("stage", "linear")
MODELS = ("resnet_rs",)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_fraction(name: str, v: Any) -> None:
    if not _is_number(v) or not 0.0 <= v < 1.0:
        raise ValueError(f"model.{name}={v!r} is not allowed; give a probability in [0, 1)")


def _check_bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"model.{name}={v!r} is not allowed; give true or false")


def _resolve_blocks(depth: Any, blocks: Any) -> tuple[int, int, int, int]:
    if blocks is not None:
        ok = (
            isinstance(blocks, Sequence)
            and not isinstance(blocks, (str, bytes))
            and len(blocks) == 4
            and all(_is_int(b) and b > 0 for b in blocks)
        )
        if not ok:
            raise ValueError(
                f"model.blocks={blocks!r} is not allowed; give four positive integers [c2, c3, c4, c5] "
                "(blocks per stage) or null to use model.depth"
            )
        return tuple(int(b) for b in blocks)  # type: ignore[return-value]
    if isinstance(depth, bool) or depth not in DEPTH_BLOCKS:
        allowed = ", ".join(str(d) for d in DEPTH_BLOCKS)
        raise ValueError(
            f"model.depth={depth!r} is not a ResNet-RS depth; allowed: {allowed}, "
            "or give model.blocks=[c2, c3, c4, c5]"
        )
    return DEPTH_BLOCKS[depth]


@dataclass(frozen=True)
class ResNetRSConfig:
    """One ResNet-RS: the `model:` group (docs/contracts.md) plus the data-given classes and channels."""

    name: str = "resnet_rs"
    depth: int = 50  # 26/50/101/152/200/270/300/350/400/420, or a label when blocks is given
    blocks: tuple[int, ...] | None = None  # [c2, c3, c4, c5] blocks per stage instead of the depth table
    width: float = 1.0
    stem: str = "released"  # released (strided conv replaces max-pool) | paper | small (28-64 px inputs)
    se_ratio: float = 0.25  # 0 turns squeeze-excitation off (Table 1 switch)
    # dropout and drop_path_rate follow the recipe in the presets (Table 8 picks them by depth and resolution)
    drop_path_rate: float = field(default=0.0, metadata={"preset": "${recipe.drop_path_rate}"})
    drop_path_schedule: str = "stage"  # stage (paper: rate*K/5 in stage cK) | linear (timm)
    dropout: float = field(default=0.0, metadata={"preset": "${recipe.dropout}"})
    resnet_d: bool = True  # avg-pool downsampling shortcut (Table 1 switch)
    zero_init_last_bn: bool = True
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # PyTorch convention; the EMA covers BN statistics too
    num_classes: int = field(default=1000, metadata={CELL: False})
    in_chans: int = field(default=3, metadata={CELL: False})

    def __post_init__(self) -> None:
        if self.name not in (None, *MODELS):
            raise ValueError(f"model.name={self.name!r} is not built by rsscale.models; allowed: resnet_rs")
        blocks = self.blocks
        if isinstance(blocks, Sequence) and not isinstance(blocks, (str, bytes)):
            object.__setattr__(self, "blocks", tuple(blocks))  # lists, OmegaConf ListConfig -> tuple
        _resolve_blocks(self.depth, self.blocks)
        width = self.width
        if not _is_number(width) or width <= 0:
            raise ValueError(
                f"model.width={width!r} is not allowed; give a positive number (e.g. 0.25 .. 2.0)"
            )
        for name in ("num_classes", "in_chans"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name}={v!r} is not allowed; give a positive integer")
        if self.stem not in STEMS:
            raise ValueError(f"model.stem={self.stem!r} is unknown; allowed: {', '.join(STEMS)}")
        if self.drop_path_schedule not in DROP_PATH_SCHEDULES:
            raise ValueError(
                f"model.drop_path_schedule={self.drop_path_schedule!r} is unknown; "
                f"allowed: {', '.join(DROP_PATH_SCHEDULES)}"
            )
        se = self.se_ratio
        if not _is_number(se) or se < 0:
            raise ValueError(f"model.se_ratio={se!r} is not allowed; give a number >= 0 (0 disables SE)")
        _check_fraction("drop_path_rate", self.drop_path_rate)
        _check_fraction("dropout", self.dropout)
        _check_bool("resnet_d", self.resnet_d)
        _check_bool("zero_init_last_bn", self.zero_init_last_bn)
        if not _is_number(self.bn_eps) or self.bn_eps <= 0:
            raise ValueError(
                f"model.bn_eps={self.bn_eps!r} is not allowed; give a positive number (e.g. 1e-5)"
            )
        if not _is_number(self.bn_momentum) or not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(
                f"model.bn_momentum={self.bn_momentum!r} is not allowed; give a number in (0, 1] "
                "(PyTorch convention: weight of the new batch statistics; TF momentum m is 1 - m here)"
            )

    @property
    def stage_blocks(self) -> tuple[int, int, int, int]:
        """Blocks per stage (c2..c5): `blocks` if given, else the depth table's row."""
        return _resolve_blocks(self.depth, self.blocks)

    def replace(self, **changes: Any) -> ResNetRSConfig:
        return dataclasses.replace(self, **changes)


def _unknown(keys: list[str], allowed: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown model config key(s) {keys}; allowed: {sorted(allowed)}")


def from_model_cfg(
    model_cfg: Mapping[str, Any] | ResNetRSConfig, num_classes: int = 1000, in_chans: int = 3
) -> ResNetRSConfig:
    """The `ResNetRSConfig` of a cell's `model:` dict (missing keys take the defaults); ValueError if bad."""
    if isinstance(model_cfg, ResNetRSConfig):
        return model_cfg.replace(num_classes=num_classes, in_chans=in_chans)
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model config must be a mapping, got {type(model_cfg).__name__}")
    cfg = dict(model_cfg)
    if cfg.get("name", "resnet_rs") is None:
        cfg.pop("name")
    return from_mapping(ResNetRSConfig, cfg, _unknown, num_classes=num_classes, in_chans=in_chans)
