"""The typed config schema's plumbing: dataclasses hold each default once, presets are built from them.

Each config group is one dataclass (`ResNetRSConfig` in rsscale/models/config.py, `DataConfig` in
rsscale/data/config.py, `RecipeConfig` / `RuntimeConfig` / `LoggerConfig` in rsscale/config.py) whose
field defaults are the group's defaults and whose ``__post_init__`` holds its range checks (a
ValueError naming the field). Two helpers here connect them to the rest:

- `preset_node(cls)`: the base node of the group's YAML presets (registered in Hydra's ConfigStore as
  ``schema/<group>``; a preset lists ``/schema/<group>@_here_`` first in its defaults list and
  overrides only what differs). A field's ``metadata["preset"]`` replaces its default there (an
  interpolation such as ``${recipe.dropout}``), `OMIT` leaves it out of the composed config: such a
  field is filled in only when the group is validated, so adding it to the schema does not change
  the keys of existing cell configs (and so their hashes).
- `from_mapping(cls, section, ...)`: the dataclass of a plain `section` dict (a resolved cell config
  group), with unknown keys reported by the caller's message.

The registered nodes are plain dicts, not typed structured configs, on purpose: OmegaConf would
reject e.g. ``data.train_res=abc`` at compose time with its own message, while rsscale validates the
resolved cell and names the field and the allowed values (tests/train/test_train_config.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
OMIT = "__rsscale_omit__"  # metadata["preset"] value: not part of the composed preset
CELL = "cell"  # metadata["cell"] = False: a field set by the builder, not by the config group


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "???"  # Hydra's mandatory value


def cell_fields(cls: type) -> tuple[str, ...]:
    """The fields a config group may have in a cell config (builder-only fields left out)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(CELL, True))


def preset_node(cls: type, **overrides: Any) -> dict[str, Any]:
    """The base node of a group's presets: defaults (or ``metadata["preset"]``), OMIT fields left out."""
    node = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get(CELL, True):
            continue
        value = f.metadata.get("preset", _default(f))
        if value != OMIT:
            node[f.name] = value
    node.update(overrides)
    return node


def defaults(cls: type) -> dict[str, Any]:
    """Every cell field's default (what validating an empty group fills in)."""
    return {f.name: _default(f) for f in dataclasses.fields(cls) if f.metadata.get(CELL, True)}


def from_mapping(
    cls: type[T],
    section: Mapping[str, Any],
    unknown: Callable[[list[str], tuple[str, ...]], Exception],
    **builder_fields: Any,
) -> T:
    """``cls(**section, **builder_fields)``; keys outside `cell_fields(cls)` raise
    ``unknown(keys, allowed)``."""
    allowed = cell_fields(cls)
    extra = sorted(set(section) - set(allowed))
    if extra:
        raise unknown(extra, allowed)
    return cls(**dict(section), **builder_fields)
