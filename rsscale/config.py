"""Compose, resolve, validate and hash cell configs.

A cell config is the plain dict of the result-changing groups (model, data, recipe, runtime,
logger). `auto` recipe values are resolved here (Table 8), so records show concrete values and
the hash sees them. Validation raises ValueError naming the field, before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rsscale.train.recipe import LR_SCHEDULES, rs_paper_regularization

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
SWEEPS_DIR = REPO_ROOT / "sweeps"
CELL_GROUPS = ("model", "data", "recipe", "runtime", "logger")
# Fields that do not change results: excluded from the cell hash.
NON_RESULT_FIELDS = {
    # data.decode: where JPEGs are decoded; the crops/flips are the same, pixels as with runtime.device
    "data": {"root", "num_workers", "download", "max_unreadable_fraction", "decode"},
    "runtime": {
        "device",
        "compile",
        "compile_payback",
        "threads",
        "eval_batch_size",
        "checkpoint_every_epochs",
        "checkpoint_every_minutes",
        "checkpoint_every_steps",
        "log_every_steps",
        "progress",
        "measure_latency",
        "latency_batch",
        "latency_iters",
        "tasks",
    },
}
PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The composed config for a list of command-line style overrides (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def cell_config(cfg: DictConfig | Mapping) -> dict[str, Any]:
    """The resolved cell config (plain dict) of a composed config, with `auto` values filled in."""
    if isinstance(cfg, DictConfig):
        cell = {g: OmegaConf.to_container(cfg[g], resolve=True) for g in CELL_GROUPS}
    else:
        cell = json.loads(json.dumps({g: cfg[g] for g in CELL_GROUPS}))
    model, data, recipe = cell["model"], cell["data"], cell["recipe"]
    auto = [k for k in ("dropout", "drop_path_rate", "randaugment_magnitude") if recipe.get(k) == "auto"]
    if auto:
        reg = rs_paper_regularization(int(model["depth"]), int(data["train_res"]))
        for k in auto:
            recipe[k] = reg[k]
    for k in ("dropout", "drop_path_rate"):
        if model.get(k) in (None, "auto"):
            model[k] = recipe.get(k) or 0.0
    if data.get("randaugment_magnitude") == "auto":
        data["randaugment_magnitude"] = recipe.get("randaugment_magnitude")
    return {g: (v if g == "logger" else normalize(v)) for g, v in cell.items()}  # names stay strings


_NUMBER = re.compile(r"^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_WORDS = {"null": None, "~": None, "none": None, "true": True, "false": False}


def normalize(value: Any) -> Any:
    """One spelling per value, so that one training run is one cell: `1.0` -> 1, tuples -> lists,
    YAML-ish strings ('1e-3', '1_000', 'true', 'null') -> the value they spell. Idempotent."""
    if isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return int(f) if math.isfinite(f) and f.is_integer() else f
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _WORDS:
            return _WORDS[word]
        if _NUMBER.match(value.strip()):
            return normalize(float(value.strip().replace("_", "")))
    return value


def cell_hash(cell: Mapping[str, Any]) -> str:
    """Stable hash of the fields that change results (not paths, loggers, cluster or speed knobs),
    after `normalize`: `epochs: 1` and `epochs: 1.0` are the same cell."""
    keep = {}
    for g in ("model", "data", "recipe", "runtime"):
        drop = NON_RESULT_FIELDS.get(g, set())
        keep[g] = {k: v for k, v in cell[g].items() if k not in drop}
    blob = json.dumps(normalize(keep), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _num(
    section: str,
    key: str,
    value: Any,
    *,
    lo=None,
    hi=None,
    integer=False,
    lo_open=False,
    hi_open=False,
    allow_none=False,
) -> None:
    field = f"{section}.{key}"
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if integer and float(value) != int(value):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{field} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise ValueError(f"{field} must be {'<' if hi_open else '<='} {hi}, got {value!r}")


@cache
def known_keys(group: str) -> frozenset[str]:
    """The fields a config group may have: the union over its presets in conf/<group>/."""
    keys: set[str] = set()
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        keys.update(k for k in OmegaConf.to_container(OmegaConf.load(path)) if k != "defaults")
    return frozenset(keys)


def check_unknown_keys(group: str, section: Mapping[str, Any]) -> None:
    """An unknown field (e.g. a `+recipe.lr=0.1` typo, which Hydra accepts) is an error, not ignored."""
    unknown = sorted(set(section) - known_keys(group))
    if unknown:
        raise ValueError(
            f"{group}.{unknown[0]} is not a known field; allowed: {', '.join(sorted(known_keys(group)))}"
        )


def validate_recipe(recipe: Mapping[str, Any]) -> None:
    _num("recipe", "epochs", recipe.get("epochs"), lo=1, integer=True)
    _num("recipe", "batch_size", recipe.get("batch_size"), lo=1, integer=True)
    _num("recipe", "lr_base", recipe.get("lr_base"), lo=0, lo_open=True)
    if recipe.get("lr_schedule") not in LR_SCHEDULES:
        raise ValueError(
            f"recipe.lr_schedule={recipe.get('lr_schedule')!r}: allowed {', '.join(LR_SCHEDULES)}"
        )
    _num("recipe", "warmup_epochs", recipe.get("warmup_epochs"), lo=0)
    _num("recipe", "weight_decay", recipe.get("weight_decay"), lo=0)
    _num("recipe", "momentum", recipe.get("momentum"), lo=0, hi=1, hi_open=True)
    _num("recipe", "label_smoothing", recipe.get("label_smoothing"), lo=0, hi=1, hi_open=True)
    _num(
        "recipe",
        "ema_decay",
        recipe.get("ema_decay"),
        lo=0,
        hi=1,
        lo_open=True,
        hi_open=True,
        allow_none=True,
    )
    _num("recipe", "dropout", recipe.get("dropout"), lo=0, hi=1, hi_open=True)
    _num("recipe", "drop_path_rate", recipe.get("drop_path_rate"), lo=0, hi=1, hi_open=True)
    _num("recipe", "randaugment_magnitude", recipe.get("randaugment_magnitude"), lo=0, hi=30, allow_none=True)
    _num("recipe", "grad_accum_steps", recipe.get("grad_accum_steps"), lo=1, integer=True)


def validate_runtime(runtime: Mapping[str, Any], batch_size: int, grad_accum: int) -> None:
    if runtime.get("precision") not in PRECISIONS:
        raise ValueError(f"runtime.precision={runtime.get('precision')!r}: allowed {', '.join(PRECISIONS)}")
    if runtime.get("device") not in DEVICES:
        raise ValueError(f"runtime.device={runtime.get('device')!r}: allowed {', '.join(DEVICES)}")
    if runtime.get("compile") not in ("auto", True, False):
        raise ValueError(f"runtime.compile={runtime.get('compile')!r}: allowed auto, true, false")
    _num("runtime", "compile_payback", runtime.get("compile_payback", 10.0), lo=0, lo_open=True)
    _num("runtime", "seed", runtime.get("seed"), lo=0, integer=True)
    _num("runtime", "tasks", runtime.get("tasks"), lo=1, integer=True)
    _num("runtime", "max_steps", runtime.get("max_steps"), lo=1, integer=True, allow_none=True)
    tasks = int(runtime.get("tasks", 1))
    if batch_size % (tasks * grad_accum):
        raise ValueError(
            f"recipe.batch_size={batch_size} is not divisible by runtime.tasks x recipe.grad_accum_steps "
            f"= {tasks} x {grad_accum}: every DDP rank needs the same micro-batch"
        )


def validate_cell(cell: Mapping[str, Any], *, check_data_files: bool = True) -> None:
    """Every check that can fail before training starts; ValueError names the field."""
    from rsscale.data import validate_data_cfg
    from rsscale.models import validate_model_cfg
    from rsscale.train.wandb_log import resolve_mode

    for g in CELL_GROUPS:
        if not isinstance(cell.get(g), Mapping):
            raise ValueError(f"config group {g!r} is missing")
    for g in ("recipe", "runtime", "logger"):
        check_unknown_keys(g, cell[g])
    validate_recipe(cell["recipe"])
    validate_runtime(
        cell["runtime"], int(cell["recipe"]["batch_size"]), int(cell["recipe"]["grad_accum_steps"])
    )
    validate_model_cfg(cell["model"])
    if check_data_files:
        validate_data_cfg(cell["data"])
    from rsscale.data.config import check_batch_fits

    check_batch_fits(cell["data"], int(cell["recipe"]["batch_size"]))
    resolve_mode(cell["logger"].get("mode", "auto"))


def cell_label(cell: Mapping[str, Any]) -> str:
    """A readable prefix for a cell's directory: depth, width, resolution, epochs."""
    m, d, r = cell["model"], cell["data"], cell["recipe"]
    depth = m["depth"] if not m.get("blocks") else "b" + "-".join(map(str, m["blocks"]))
    return f"d{depth}-w{float(m['width']):g}-r{d['train_res']}-e{r['epochs']}"


def cell_id(cell: Mapping[str, Any], h: str | None = None) -> str:
    return f"{cell_label(cell)}-{(h or cell_hash(cell))[:8]}"
