"""Search spaces as data: sweeps/search/NAME.yaml -> typed parameters over dotted cell fields.

A search file holds `params` (dotted cell field -> {type: float|int|categorical, low, high, log,
step, choices}) and optional `fixed` overrides. Every trial's cell is the base config with the
fixed values and the trial's suggestions applied, its `${a.b}` links re-resolved and validated.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rsscale.config import cell_config, validate_cell
from rsscale.launch.grid import field_problem, resolve_link, set_path

PARAM_TYPES = ("float", "int", "categorical")
SPACE_KEYS = {"name", "description", "params", "fixed"}
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices"}


class SearchSpaceError(ValueError):
    """A search space that cannot be used; the message names the space and the parameter."""


@dataclass(frozen=True)
class Param:
    path: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The extreme values: validating the cell at each catches out-of-range bounds early."""
        if self.type == "categorical":
            return list(self.choices)
        return [self.low, self.high]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def parse_space(spec: Mapping[str, Any] | None) -> tuple[str, list[Param], dict[str, Any]]:
    """(name, params, fixed) of a `search:` section; SearchSpaceError on anything unusable."""
    if not spec:
        raise SearchSpaceError("no search space: pass +search=NAME (a file in sweeps/search/)")
    name = spec.get("name", "?")
    unknown = set(spec) - SPACE_KEYS
    if unknown:
        raise SearchSpaceError(f"search {name}: unknown keys {sorted(unknown)}; allowed {sorted(SPACE_KEYS)}")
    raw = spec.get("params") or {}
    if not isinstance(raw, Mapping) or not raw:
        raise SearchSpaceError(f"search {name}: params is empty; give at least one parameter to tune")
    params = []
    for path, p in raw.items():
        where = f"search {name}: {path}"
        if not isinstance(p, Mapping):
            raise SearchSpaceError(f"{where}: must be a mapping with type, low/high or choices")
        bad = set(p) - PARAM_KEYS
        if bad:
            raise SearchSpaceError(f"{where}: unknown keys {sorted(bad)}; allowed {sorted(PARAM_KEYS)}")
        kind = p.get("type")
        if kind not in PARAM_TYPES:
            raise SearchSpaceError(f"{where}: type={kind!r}; allowed {', '.join(PARAM_TYPES)}")
        if kind == "categorical":
            choices = p.get("choices")
            if not isinstance(choices, list | tuple) or not choices:
                raise SearchSpaceError(f"{where}: a categorical needs a non-empty list of choices")
            params.append(Param(path, kind, choices=tuple(choices)))
            continue
        low, high, log, step = p.get("low"), p.get("high"), bool(p.get("log", False)), p.get("step")
        if not _is_num(low) or not _is_num(high):
            raise SearchSpaceError(f"{where}: low and high must be numbers, got low={low!r} high={high!r}")
        if kind == "int" and (int(low) != low or int(high) != high):
            raise SearchSpaceError(f"{where}: an int parameter needs integer low/high, got {low!r}..{high!r}")
        if low > high:
            raise SearchSpaceError(f"{where}: low={low!r} > high={high!r}")
        if log and low <= 0:
            raise SearchSpaceError(f"{where}: a log range must be > 0, got low={low!r} (use log: false)")
        if step is not None:
            if not _is_num(step) or step <= 0:
                raise SearchSpaceError(f"{where}: step must be a positive number, got {step!r}")
            if log:
                raise SearchSpaceError(f"{where}: step and log cannot be combined")
        params.append(Param(path, kind, low, high, log, step))
    fixed = dict(spec.get("fixed") or {})
    return name, params, fixed


def check_paths(name: str, params: list[Param], fixed: Mapping[str, Any], base: Mapping) -> None:
    """Every tuned or fixed path is a field of the cell config (a typo is an error, not a new key)."""
    for path in [p.path for p in params] + list(fixed):
        problem = field_problem(base, path)
        if problem:
            raise SearchSpaceError(f"search {name}: {path!r} {problem}")


def trial_cell(base: Mapping, links: Mapping[str, str], fixed: Mapping, values: Mapping[str, Any]) -> dict:
    """The resolved cell config of one trial: base + fixed + suggested values, links re-resolved."""
    tree = copy.deepcopy(dict(base))
    for k, v in {**fixed, **values}.items():
        set_path(tree, k, v)
    for dst, src in links.items():
        if dst not in values and dst not in fixed:
            set_path(tree, dst, resolve_link(tree, src, links))
    return cell_config(tree)


def validate_space(
    name: str, params: list[Param], fixed: Mapping, base: Mapping, links: Mapping[str, str]
) -> dict:
    """Check paths and every parameter's extremes against the cell validation; return the centre cell."""
    check_paths(name, params, fixed, base)
    for p in params:
        for v in p.corners():
            try:
                validate_cell(trial_cell(base, links, fixed, {p.path: v}), check_data_files=False)
            except ValueError as e:
                raise SearchSpaceError(f"search {name}: {p.path}={v!r} gives an invalid cell: {e}") from None
    cell = trial_cell(base, links, fixed, {})
    validate_cell(cell)
    return cell
