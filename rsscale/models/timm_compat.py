"""Load timm ``resnetrsNN`` weights into `rsscale.models.ResNetRS`.

Blocks, stages and head share timm's names (``layerK.i.conv1``, ``...se.fc1``, ``fc``); only the stem and
the shortcut have readable names here:

    timm                   rsscale
    conv1.0 / conv1.1      stem.conv1 / stem.bn1
    conv1.3 / conv1.4      stem.conv2 / stem.bn2
    conv1.6 / bn1          stem.conv3 / stem.bn3
    maxpool.0 / maxpool.1  stem.conv4 / stem.bn4     (the 3x3/2 conv that replaces the max-pool)
    layerK.i.downsample.1  layerK.i.downsample.conv  (.0 is the average pool, no weights)
    layerK.i.downsample.2  layerK.i.downsample.bn
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["timm_key_to_rsscale", "load_timm_state_dict"]

_STEM_RENAMES = {
    "conv1.0.": "stem.conv1.",
    "conv1.1.": "stem.bn1.",
    "conv1.3.": "stem.conv2.",
    "conv1.4.": "stem.bn2.",
    "conv1.6.": "stem.conv3.",
    "bn1.": "stem.bn3.",
    "maxpool.0.": "stem.conv4.",
    "maxpool.1.": "stem.bn4.",
}
_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+\.downsample)\.([12])\.")


def timm_key_to_rsscale(key: str) -> str:
    """The rsscale name of a timm resnetrs state-dict key (unknown keys come back unchanged)."""
    for old, new in _STEM_RENAMES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    m = _DOWNSAMPLE.match(key)
    if m:
        return f"{m.group(1)}.{'conv' if m.group(2) == '1' else 'bn'}.{key[m.end() :]}"
    return key


def _describe(model: nn.Module) -> str:
    depth = getattr(model, "depth", None)
    return (
        f"a timm resnetrs state dict for depth {depth} width {getattr(model, 'width', '?')} "
        f"(blocks {list(getattr(model, 'blocks_per_stage', []))}, stem {getattr(model, 'stem_type', '?')!r}, "
        f"{getattr(model, 'num_classes', '?')} classes, {getattr(model, 'in_chans', '?')} input channels)"
    )


def _short(keys: list[str], n: int = 8) -> str:
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_timm_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy a timm ``resnetrsNN`` state dict into `model` (in place, strict).

    Raises ValueError naming missing / unexpected keys and shape mismatches when the state dict is not
    from the same architecture (depth, width, stem, classes, input channels).
    """
    original = {timm_key_to_rsscale(k): k for k in state_dict}
    mapped = {new: state_dict[old] for new, old in original.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(original[k] for k in set(mapped) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(mapped[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(mapped)
        if tuple(mapped[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys (rsscale names): {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys (timm names): {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches (state dict vs model): {_short(mismatched)}")
    if problems:
        raise ValueError(f"load_timm_state_dict expects {_describe(model)}; " + "; ".join(problems))
    model.load_state_dict(mapped, strict=True)
