"""Hydra overrides -> one rsscale sweep: `-m` sweeps become grid axes, and the sweep-dir name.

Hydra parses the grammar (comma lists, range(), choice(), glob(), quoting, `+`/`++`/`~`); this
module only sorts the parsed overrides. A swept config field becomes a grid axis of the one
composed config (so `-m` cells are the cells of the equivalent grid file, same hashes); a swept
config group (`recipe=fast,rs_paper`) changes the composition, so each choice is composed once
and its cells concatenated. Nothing here submits: a bad combination fails the whole expansion.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from rsscale.config import CELL_GROUPS
from rsscale.launch.grid import GridError, expand

# Overrides that do not change which cells run or their results: not part of a sweep's (or a tuning
# study's) directory name. `grid` and `search` (which file) are in the name already; `grid.axes.X=[...]`
# changes the cells, so it is hashed; `tune.*` are the tuner's settings (a study's identity is checked
# on its own, rsscale.tune.__main__.prepare).
DIR_NEUTRAL_ROOTS = ("hydra", "sweep", "sweep_root", "cluster", "logger", "tune")
DIR_NEUTRAL_KEYS = ("grid", "search", "runtime.progress")


class MultirunError(ValueError):
    """A `-m` sweep that cannot become one rsscale sweep; the message names the override."""


@dataclass
class SweepOverrides:
    """Parsed overrides, sorted: plain ones, swept fields (axes) and swept config groups."""

    plain: list[str] = field(default_factory=list)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    axis_first: list[str] = field(default_factory=list)  # `key=first value`, composed so the key exists
    groups: dict[str, list[str]] = field(default_factory=dict)  # group key element -> options


def _parse(lines: Sequence[str], config_loader=None) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create(config_loader=config_loader)
    try:
        return parser.parse_overrides(list(lines))
    except HydraException as e:
        raise MultirunError(f"cannot parse the overrides: {e}") from None


def _last_wins(overrides: Iterable) -> list:
    """One override per key, the last given (hydra.sweeper.params first, then the command line)."""
    by_key: dict[str, Any] = {}
    for o in overrides:
        by_key.pop(o.get_key_element(), None)
        by_key[o.get_key_element()] = o
    return list(by_key.values())


def params_lines(params: Mapping[str, Any] | None) -> list[str]:
    """`hydra.sweeper.params` (KEY: "V1,V2" in a config file) as override lines."""
    return [f"{k}={v}" for k, v in (params or {}).items()]


def _root(key: str) -> str:
    return key.replace("/", ".").split(".")[0]


def split(arguments: Sequence[str], loader, config_name: str, hydra_overrides: list[str]) -> SweepOverrides:
    """Sort `arguments` (Hydra's override strings) into plain overrides, axes and group sweeps;
    `hydra_overrides` (e.g. hydra.searchpath) tell which keys are config groups."""
    from hydra.errors import HydraException

    out = SweepOverrides()
    for o in _last_wins(_parse(arguments, loader)):  # glob() expands against the groups here
        line = o.input_line
        if not o.is_sweep_override():
            out.plain.append(line)
            continue
        key = o.key_or_group
        if o.is_hydra_override():
            raise MultirunError(f"{line}: Hydra's own settings cannot be swept")
        if not o.is_discrete_sweep():
            raise MultirunError(
                f"{line}: {o.value_type.name.lower()} is not a list of values; a grid needs comma lists, "
                "range(), choice() or glob() (continuous search spaces belong to a tuning study)"
            )
        if _root(key) not in CELL_GROUPS:
            raise MultirunError(
                f"{line}: only cell fields and config groups can be swept ({', '.join(CELL_GROUPS)}); "
                f"{_root(key)} is the same for every cell of one sweep"
            )
        if o.is_delete():
            raise MultirunError(f"{line}: a deletion (~KEY) cannot be swept; sweep the values instead")
        try:
            texts = list(o.sweep_string_iterator())
            is_group = bool(loader.get_group_options(key, config_name=config_name, overrides=hydra_overrides))
        except HydraException as e:
            raise MultirunError(f"{line}: {e}") from None
        if not texts:
            raise MultirunError(f"{line}: the sweep has no values")
        if is_group:
            out.groups[o.get_key_element()] = texts
        else:  # each value as Hydra assigns it in a run: `key=value` parsed once more
            out.axes[key] = [one.value() for one in _parse([f"{key}={t}" for t in texts])]
            out.axis_first.append(f"{o.get_key_element()}={texts[0]}")
    return out


def expand_multirun(master: DictConfig, arguments: Sequence[str], config_loader, *, validate: bool = True):
    """All cells of a `-m` sweep: (grid spec, cells), exactly as `rsscale.launch.grid.expand` gives them.

    One composition per choice of the swept config groups (one in all when none is swept), each
    expanded with the swept fields as extra grid axes; cells are concatenated, deduplicated by
    hash. Every cell is validated before this returns.
    """
    from hydra.errors import HydraException

    hydra_overrides = list(master.hydra.overrides.hydra)
    config_name = master.hydra.job.config_name
    params = params_lines(master.hydra.sweeper.get("params"))
    ov = split([*params, *arguments], config_loader, config_name, hydra_overrides)
    group_keys = list(ov.groups)
    spec_out, cells, seen = None, [], {}
    for choice in itertools.product(*ov.groups.values()):
        chosen = [f"{k}={v}" for k, v in zip(group_keys, choice)]
        where = f" ({', '.join(chosen)})" if chosen else ""
        try:
            cfg = config_loader.load_sweep_config(master, [*ov.plain, *chosen, *ov.axis_first])
        except HydraException as e:
            raise MultirunError(f"cannot compose{where}: {e}") from None
        try:
            spec, part = expand(cfg, axes=ov.axes, validate=validate, overrides=ov.plain)
        except GridError as e:
            raise MultirunError(f"{e}{where}") from None
        if spec_out is not None and spec["name"] != spec_out["name"]:
            raise MultirunError(f"one sweep has one grid: got {spec_out['name']!r} and {spec['name']!r}")
        spec_out = spec
        by_id = {c.cell_id: c for c in part}
        for point, cell_id in spec["merged"]:
            _refuse_merge(point, by_id[cell_id].axes, ov.axes, cell_id)
        for c in part:
            if chosen:
                c.axes = {**{k.lstrip("+"): v for k, v in zip(group_keys, choice)}, **c.axes}
            if c.hash in seen:
                _refuse_merge(c.axes, seen[c.hash].axes, ov.groups, c.cell_id)
                continue
            seen[c.hash] = c
            cells.append(c)
    return spec_out, cells


def _refuse_merge(point: Mapping, other: Mapping, swept: Iterable[str], cell_id: str) -> None:
    """Two swept combinations that are one cell: one of them would silently not run; say so."""
    keys = {k.lstrip("+") for k in swept}
    differ = [k for k in point if k in keys and point.get(k) != other.get(k)]
    if differ:
        show = ", ".join(f"{k}={point[k]} / {other.get(k)}" for k in differ)
        raise MultirunError(
            f"the combinations with {show} are the same cell ({cell_id}): {', '.join(differ)} does not "
            "change the results (not in the cell hash), so one combination would never run; "
            "sweep fields that change results only"
        )


def canonical(lines: Sequence[str], params: Mapping[str, Any] | None = None) -> list[str]:
    """The result-changing overrides as sorted `key=value` lines: a sweep's distinct values sorted,
    so `d=26,50`, `d=range(26,51,24)` and `hydra.sweeper.params: {d: 50,26}` read the same."""
    out = []
    for o in _last_wins(_parse([*params_lines(params), *lines])):
        key = o.key_or_group
        if _root(key) in DIR_NEUTRAL_ROOTS or key in DIR_NEUTRAL_KEYS:
            continue
        if o.is_delete() and o.value() is None:
            out.append(f"~{key}")
            continue
        if o.is_sweep_override():
            try:
                value = ",".join(sorted(set(o.sweep_string_iterator())))
            except Exception:  # noqa: BLE001 - glob() needs the config loader; its text names it too
                value = o.input_line.split("=", 1)[1]
        else:
            value = o.get_value_element_as_str()
        out.append(f"{key}={value}")
    return sorted(out)


def dir_suffix(task: Sequence[str] | None = None, params: Mapping | None = None, mode: Any = None) -> str:
    """The one naming function of sweep and study directories: '-<hash>' of the result-changing
    overrides in Hydra's record (`hydra.overrides.task`, plus `hydra.sweeper.params` in a multirun);
    '' when there are none. It is the resolver `rsscale_dir_suffix` of conf/config.yaml and
    conf/tune.yaml."""
    multirun = str(mode).upper().endswith("MULTIRUN")
    keep = canonical(list(task or []), params if multirun else None)
    return "-" + hashlib.sha256("\n".join(keep).encode()).hexdigest()[:8] if keep else ""
