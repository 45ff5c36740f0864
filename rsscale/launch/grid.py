"""Grids as data: sweeps/NAME.yaml -> cells (resolved configs with stable hashes).

A grid file holds `axes` (dotted config key -> list of values; cartesian product), optional
`cases` (named override sets, crossed with the axes: the additive study; a case may add `axes` of
its own, so that one grid holds separate scaling paths that share a base model), `fixed` overrides
and `exclude` patterns. Every cell is resolved and validated before anything is submitted.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rsscale.config import (
    CELL_GROUPS,
    SWEEPS_DIR,
    cell_config,
    cell_hash,
    cell_id,
    normalize,
    validate_cell,
)

_INTERP = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")
GRID_KEYS = {"name", "description", "axes", "cases", "fixed", "exclude", "scale"}


@dataclass
class Cell:
    """One point of a grid: its resolved config, hash, id and the axis values that define it."""

    cell_id: str
    hash: str
    config: dict[str, Any]
    axes: dict[str, Any] = field(default_factory=dict)
    case: str | None = None


class GridError(ValueError):
    """A grid file that cannot be expanded; the message names the grid and the field."""


def _get(tree: Mapping, dotted: str):
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def field_problem(base: Mapping, dotted: str) -> str | None:
    """Why `dotted` names no field of the cell config `base`, or None (a typo is an error, not a new key)."""
    group = dotted.split(".")[0]
    if group not in CELL_GROUPS:
        return f"is not a cell field (groups: {', '.join(CELL_GROUPS)})"
    try:
        node = _get(base, dotted)
    except KeyError:
        keys = ", ".join(sorted(base[group])) if isinstance(base.get(group), Mapping) else ""
        return f"is not a config field; {group} has: {keys}"
    if isinstance(node, Mapping):
        return f"is a group of fields, not one field; name the field (e.g. {dotted}.{next(iter(node), 'x')})"
    return None


def value_problem(base: Mapping, dotted: str, value: Any) -> str | None:
    """Why `value` cannot be a grid value of the field `dotted`: one plain value (number, string,
    boolean, null), or a list where the field holds a list (model.blocks, logger.tags)."""
    if value is None or isinstance(value, bool | int | float | str):
        return None
    current = _get(base, dotted)
    list_field = isinstance(value, list) and (current is None or isinstance(current, list))
    if list_field and all(v is None or isinstance(v, bool | int | float | str) for v in value):
        return None
    return f"value {value!r} is not a plain value (a number, string, boolean or null)"


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """tree[a][b][c] = a copy of value, for dotted = "a.b.c" (the parents must exist)."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def config_links(cfg: DictConfig, prefix: str = "") -> dict[str, str]:
    """Simple `${a.b}` interpolations of the base config, to re-apply after each cell's overrides."""
    out = {}
    for key in cfg:
        path = f"{prefix}{key}"
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            out.update(config_links(node, path + "."))
        elif OmegaConf.is_interpolation(cfg, key):
            m = _INTERP.match(str(node._value()))
            if not m:
                raise GridError(f"{path}: only plain ${{a.b}} interpolations are supported in cell configs")
            out[path] = m.group(1)
    return out


def grid_spec(cfg: DictConfig) -> dict[str, Any]:
    """The grid section of a composed config as a plain dict (empty grid: one default cell)."""
    grid = cfg.get("grid")
    if grid is None:
        return {"name": "default", "axes": {}, "cases": None, "fixed": {}, "exclude": []}
    spec = OmegaConf.to_container(grid, resolve=True)
    if not isinstance(spec, dict) or not spec.get("name"):
        raise GridError("the grid file has no `name:` (a grid is a mapping with name, axes, fixed, ...)")
    unknown = set(spec) - GRID_KEYS
    name = spec.get("name", "?")
    if unknown:
        raise GridError(f"grid {name}: unknown keys {sorted(unknown)}; allowed {sorted(GRID_KEYS)}")
    spec.setdefault("axes", {})
    spec.setdefault("fixed", {})
    spec.setdefault("exclude", [])
    spec.setdefault("cases", None)
    for axis, values in (spec["axes"] or {}).items():
        if not isinstance(values, list):
            raise GridError(f"grid {name}: axis {axis} must be a list of values, got {values!r}")
        if not values:
            raise GridError(f"grid {name}: axis {axis} is empty; give at least one value")
    if spec["cases"] is not None:
        if not isinstance(spec["cases"], list) or not spec["cases"]:
            raise GridError(f"grid {name}: cases must be a non-empty list of {{name, overrides}}")
        for i, case in enumerate(spec["cases"]):
            if not isinstance(case, Mapping) or "name" not in case:
                raise GridError(f"grid {name}: cases[{i}] needs a name and overrides")
            for axis, values in (case.get("axes") or {}).items():
                if not isinstance(values, list) or not values:
                    raise GridError(
                        f"grid {name}: case {case['name']!r} axis {axis} must be a non-empty list of values"
                    )
    return spec


def command_line_fields(lines: Sequence[str]) -> list[str]:
    """The cell fields (dotted keys) that these Hydra override lines set; group choices, deletions
    and keys outside the cell groups (hydra, sweep, grid, cluster) are not fields."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(list(lines)):
        key = o.key_or_group
        if "." in key and key.split(".")[0] in CELL_GROUPS and not o.is_delete() and key not in out:
            out.append(key)
    return out


def apply_command_line(spec: dict[str, Any], base: Mapping, keys: Sequence[str]) -> list[str]:
    """The command line wins over the grid (Hydra's convention): a field it sets leaves the grid's
    `fixed` and case overrides, and an axis on it becomes that single value. Returns one line per
    grid setting replaced, for the plan."""

    def show(key: str) -> Any:
        return _get(base, key)

    changed = []
    for key in keys:
        if key in spec["fixed"]:
            changed.append(f"{key}={show(key)!r} (grid fixed: {spec['fixed'].pop(key)!r})")
        if key in spec["axes"]:
            changed.append(f"{key}={show(key)!r} (grid axis: {spec['axes'][key]!r})")
            spec["axes"][key] = [show(key)]
        for case in spec["cases"] or []:
            where = f"case {case['name']!r}"
            if key in (case.get("overrides") or {}):
                changed.append(f"{key}={show(key)!r} ({where}: {case['overrides'].pop(key)!r})")
            if key in (case.get("axes") or {}):
                changed.append(f"{key}={show(key)!r} ({where} axis: {case['axes'][key]!r})")
                case["axes"][key] = [show(key)]
    return changed


def expand(
    cfg: DictConfig,
    *,
    axes: Mapping[str, list] | None = None,
    validate: bool = True,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, Any], list[Cell]]:
    """All cells of the grid in `cfg`, resolved, deduplicated by hash and validated.

    `axes` adds axes to the grid's own (a `-m` sweep; same key: these values win). `overrides` are
    the command line's override lines (composed into `cfg` already): the fields they set win over
    the grid's (spec["command_line"] says which grid settings they replaced). Fast enough for
    10,000-cell grids: the base config is resolved once and each cell is a plain dict copy with its
    overrides and the base's interpolations re-applied.
    """
    spec = grid_spec(cfg)
    spec["axes"] = dict(spec["axes"] or {})
    axes_in = axes
    name = spec["name"]
    base_cfg = OmegaConf.masked_copy(cfg, list(CELL_GROUPS))
    links = config_links(base_cfg)
    base = OmegaConf.to_container(base_cfg, resolve=False)
    set_here = [k for k in command_line_fields(overrides) if k not in (axes or {})]
    spec["command_line"] = apply_command_line(
        spec, base, [k for k in set_here if field_problem(base, k) is None]
    )
    for key, values in (axes or {}).items():
        spec["axes"].pop(key, None)  # a swept key keeps its command-line position in the product
        spec["axes"][key] = list(values)

    def check_key(key: str, where: str) -> None:
        problem = field_problem(base, key)
        if problem:
            raise GridError(f"grid {name}: {where} {key!r} {problem}")

    def check_values(key: str, values: list, where: str) -> None:
        for v in values:
            problem = value_problem(base, key, v)
            if problem:
                raise GridError(f"grid {name}: {where} {key!r}: {problem}")

    for key, value in spec["fixed"].items():
        check_key(key, "fixed field")
        check_values(key, [value], "fixed field")
    for key, values in spec["axes"].items():
        check_key(key, "axis")
        check_values(key, values, "axis")
    cases = spec["cases"] or [{"name": None, "overrides": {}}]
    for case in cases:
        for key, value in (case.get("overrides") or {}).items():
            check_key(key, f"case {case['name']!r} field")
            check_values(key, [value], f"case {case['name']!r} field")
        for key, values in (case.get("axes") or {}).items():
            check_key(key, f"case {case['name']!r} axis")
            check_values(key, values, f"case {case['name']!r} axis")
    for pattern in spec["exclude"]:
        for key in pattern:
            if (
                key != "case"
                and key not in spec["axes"]
                and not any(key in (c.get("overrides") or {}) or key in (c.get("axes") or {}) for c in cases)
            ):
                raise GridError(f"grid {name}: exclude names {key!r}, which is not an axis")

    cells: dict[str, Cell] = {}
    same_cell: list[tuple[dict, str]] = []
    validated: set[str] = set()
    for case in cases:
        axes = list({**(case.get("axes") or {}), **spec["axes"]}.items())
        keys = [k for k, _ in axes]
        for combo in itertools.product(*[v for _, v in axes]):
            point = dict(zip(keys, combo))
            tree = copy.deepcopy(base)
            for k, v in spec["fixed"].items():
                set_path(tree, k, v)
            for k, v in (case.get("overrides") or {}).items():
                set_path(tree, k, v)
            for k, v in point.items():
                set_path(tree, k, v)
            merged = {**(case.get("overrides") or {}), **point, "case": case.get("name")}
            if any(all(merged.get(k) == v for k, v in pat.items()) for pat in spec["exclude"]):
                continue
            for dst, src in links.items():
                if dst not in point and dst not in spec["fixed"] and dst not in (case.get("overrides") or {}):
                    set_path(tree, dst, resolve_link(tree, src, links))  # a value set explicitly stays
            cell = cell_config(tree)
            h = cell_hash(cell)
            if validate:  # every point, also one that is the same cell as another (unhashed fields)
                data_key = json.dumps(cell["data"], sort_keys=True)
                try:
                    validate_cell(cell, check_data_files=data_key not in validated)
                except ValueError as e:
                    shown = {**point, "case": case.get("name")}
                    where = ", ".join(f"{k}={v}" for k, v in shown.items() if v is not None) or "defaults"
                    raise GridError(f"grid {name}: cell ({where}): {e}") from None
                validated.add(data_key)
            if h in cells:  # the same cell twice: run once; the caller can see which (spec["merged"])
                _refuse_unhashed_axis(name, point, cells[h], set(spec["axes"]) - set(axes_in or {}))
                same_cell.append((point, cells[h].cell_id))
                continue
            cells[h] = Cell(cell_id(cell, h), h, cell, axes=point, case=case.get("name"))
    if not cells:
        raise GridError(f"grid {name}: the exclusions leave no cell to run")
    spec["merged"] = same_cell
    return spec, list(cells.values())


def _refuse_unhashed_axis(name: str, point: Mapping, other: Cell, grid_axes: set[str]) -> None:
    """Two values of a grid axis that give one cell (the field is outside the hash): one would never run."""
    differ = [
        k
        for k in point
        if k in grid_axes and k in other.axes and normalize(point[k]) != normalize(other.axes[k])
    ]  # `1`, `1.0` and `'1'` are one value spelled three ways
    if differ:
        show = ", ".join(f"{k}={point[k]!r} / {other.axes[k]!r}" for k in differ)
        raise GridError(
            f"grid {name}: the points with {show} are the same cell ({other.cell_id}): {', '.join(differ)} "
            "does not change the results (not in the cell hash), so one of them would never run; "
            "make it a fixed field or a command-line override"
        )


def resolve_link(tree: Mapping, src: str, links: Mapping[str, str], depth: int = 0):
    """The value `src` stands for in `tree`, following `links` (config_links) to the end."""
    if depth > 10:
        raise GridError(f"interpolation loop at {src}")
    if src in links:
        return resolve_link(tree, links[src], links, depth + 1)
    return _get(tree, src)


def grid_file(argv: list[str]) -> Path | None:
    """The YAML file that `+grid=NAME` on this command line loads (sweeps/, or a hydra.searchpath)."""
    names = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("grid=")]
    if not names:
        return None
    roots = [SWEEPS_DIR]
    for a in argv:
        if a.startswith("hydra.searchpath="):
            for item in a.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    roots.insert(0, Path(item.removeprefix("file://")) / "grid")
    for root in roots:
        path = root / f"{names[-1]}.yaml"
        if path.exists():
            return path
    return None


def check_grid_file(path: Path) -> None:
    """A malformed, blank or name-less grid YAML: one line naming the file, line and column."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise GridError(f"{where}: {problem}" + (f" ({context})" if context else "")) from None
    if data is None:
        raise GridError(f"{path}:1:1: the grid file is empty; it needs at least `name:` and `axes:`")
    if not isinstance(data, Mapping):
        raise GridError(f"{path}:1:1: a grid is a mapping (name, axes, fixed), got {type(data).__name__}")
    if not data.get("name"):
        raise GridError(f"{path}:1:1: the grid has no `name:`; add e.g. `name: {path.stem}`")
