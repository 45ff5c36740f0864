"""The cell's config on disk follows the sweep: re-written on every launch, with the fields that changed.

Only fields outside the cell hash can differ here (device, paths, logger, threads, checkpoint
cadence): a changed hashed field is a different cell. Without the refresh a failure caused by such
a field (`runtime.device=cuda` on a CPU host, a wrong `data.root`) could never be fixed in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsscale.io import atomic_write_json, read_json
from rsscale.layout import CellLayout


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two configs (added and removed ones too)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_fields(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out


def sync_config(cell_dir: Path, config: Mapping[str, Any]) -> list[str] | None:
    """Write the cell's config if it is new or differs; return the changed fields (None: a new file).

    An unreadable old config is replaced (it is derived data: the sweep command rebuilds it).
    """
    path = CellLayout(cell_dir).config
    old = None
    if path.exists():
        try:
            old = read_json(path)
        except (OSError, ValueError):
            old = {}
    if old is not None and old == config:
        return []
    # one fsync per file costs ~7 ms: 70 s for 10,000 cells; the caller syncs once for all
    atomic_write_json(path, dict(config), fsync=False)
    return None if old is None else (changed_fields(old, config) or ["<unreadable config.json>"])
