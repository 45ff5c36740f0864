"""Compose, resolve, validate and hash cell configs.

A cell config is the plain dict of the result-changing groups (model, data, recipe, runtime,
logger). `auto` recipe values are resolved here (Table 8), so records show concrete values and
the hash sees them. Validation raises ValueError naming the field, before anything runs.

The schema: one dataclass per group holds its defaults and range checks (`RecipeConfig`,
`RuntimeConfig`, `LoggerConfig` here; `rsscale.models.ResNetRSConfig`; `rsscale.data.DataConfig`).
They are registered as the presets' base nodes in Hydra's ConfigStore at import (`register_schema`),
and `typed_cell` reads a plain cell dict as those dataclasses.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from rsscale.config_schema import cell_fields, from_mapping, preset_node
from rsscale.data import DATASETS, DataConfig, check_batch_fits, data_config
from rsscale.data.registry import preset_node as data_preset_node
from rsscale.data.registry import validated_data_config
from rsscale.models import ResNetRSConfig, from_model_cfg

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
PROGRESS_MODES = ("auto", "bar", "log", "none")  # a YAML `none` arrives as null: also none
LOGGER_MODES = ("auto", "online", "offline", "disabled")
LR_SCHEDULES = ("cosine", "step")

# Paper Table 8: (depth, train_res) -> (dropout, stochastic depth rate, RandAugment magnitude).
TABLE8: dict[tuple[int, int], tuple[float, float, int]] = {
    (50, 160): (0.25, 0.0, 10),
    (101, 160): (0.25, 0.0, 10),
    (101, 192): (0.25, 0.0, 15),
    (152, 192): (0.25, 0.0, 15),
    (152, 224): (0.25, 0.0, 15),
    (152, 256): (0.25, 0.0, 15),
    (200, 256): (0.25, 0.1, 15),
    (270, 256): (0.25, 0.1, 15),
    (350, 256): (0.25, 0.1, 15),
    (350, 320): (0.4, 0.1, 15),
    (420, 320): (0.4, 0.1, 15),
}


def rs_paper_regularization(depth: int, train_res: int) -> dict[str, float]:
    """Table 8's regularisation for a model; off-table cells follow the table's rule.

    The rule that reproduces every row: dropout 0.25 (0.4 for the two largest models at >= 320 px),
    stochastic depth 0.1 from RS-200 up, RandAugment 10 for the small models at <= 160 px, else 15.
    """
    if (depth, train_res) in TABLE8:
        d, sd, ra = TABLE8[(depth, train_res)]
    else:
        d = 0.4 if depth >= 350 and train_res >= 320 else 0.25
        sd = 0.1 if depth >= 200 else 0.0
        ra = 10 if depth <= 101 and train_res <= 160 else 15
    return {"dropout": d, "drop_path_rate": sd, "randaugment_magnitude": ra}


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The composed config for a list of command-line style overrides (Hydra's compose API)."""
    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def cell_config(cfg: DictConfig | Mapping) -> dict[str, Any]:
    """The resolved cell config (plain dict) of a composed config, with `auto` values filled in."""
    cell: dict[str, Any]
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
    if integer and float(value) != math.trunc(value):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{field} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise ValueError(f"{field} must be {'<' if hi_open else '<='} {hi}, got {value!r}")


@dataclass(frozen=True)
class RecipeConfig:
    """The `recipe:` group: optimiser, schedule and regularisation of one cell (conf/recipe/ presets).

    Defaults are the paper's ImageNet optimiser (batch 4096, LR 0.1 x batch/256, cosine, 5 warm-up
    epochs, wd 4e-5) without the RS regularisation; `auto` (dropout, drop_path_rate,
    randaugment_magnitude) means Table 8's value and is resolved by `cell_config` before validation.
    """

    name: str = "custom"
    epochs: int = 350
    batch_size: int = 4096  # global batch (all ranks, all accumulation steps)
    lr_base: float = 0.1  # peak LR = lr_base * batch_size / 256
    lr_schedule: str = "cosine"  # cosine | step (Table 1 baseline: x0.1 at 30/60/80% of training)
    warmup_epochs: float = 5
    weight_decay: float = 4.0e-5
    wd_on_bn: bool = False
    momentum: float = 0.9
    nesterov: bool = False
    label_smoothing: float = 0.0
    ema_decay: float | None = None  # null = no EMA (Table 1 switch); the paper uses 0.9999
    dropout: float | str = 0.0
    drop_path_rate: float | str = 0.0
    randaugment_magnitude: int | str | None = None
    grad_accum_steps: int = 1

    def __post_init__(self) -> None:
        _num("recipe", "epochs", self.epochs, lo=1, integer=True)
        _num("recipe", "batch_size", self.batch_size, lo=1, integer=True)
        _num("recipe", "lr_base", self.lr_base, lo=0, lo_open=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"recipe.lr_schedule={self.lr_schedule!r}: allowed {', '.join(LR_SCHEDULES)}")
        _num("recipe", "warmup_epochs", self.warmup_epochs, lo=0)
        _num("recipe", "weight_decay", self.weight_decay, lo=0)
        _num("recipe", "momentum", self.momentum, lo=0, hi=1, hi_open=True)
        _num("recipe", "label_smoothing", self.label_smoothing, lo=0, hi=1, hi_open=True)
        ema = self.ema_decay
        _num("recipe", "ema_decay", ema, lo=0, hi=1, lo_open=True, hi_open=True, allow_none=True)
        _num("recipe", "dropout", self.dropout, lo=0, hi=1, hi_open=True)
        _num("recipe", "drop_path_rate", self.drop_path_rate, lo=0, hi=1, hi_open=True)
        _num("recipe", "randaugment_magnitude", self.randaugment_magnitude, lo=0, hi=30, allow_none=True)
        _num("recipe", "grad_accum_steps", self.grad_accum_steps, lo=1, integer=True)


@dataclass(frozen=True)
class RuntimeConfig:
    """The `runtime:` group: seed and precision (hashed) and the speed, logging and path knobs
    (`NON_RESULT_FIELDS`, not hashed)."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16, else fp32) | bf16 | fp32
    channels_last: bool = True
    compile: bool | str = "auto"  # auto (when training time >= compile_payback x compile time) | true | false
    compile_payback: float = (
        10.0  # runtime.compile=auto compiles cells that train this many times the compile time
    )
    deterministic: bool = False  # deterministic kernels (exact resume tests)
    threads: int | None = None  # torch intra-op threads (null: torch's default / the job's CPUs)
    eval_batch_size: int = 512
    eval_every_epochs: int = 1
    checkpoint_every_epochs: int = 1
    checkpoint_every_minutes: float = 10.0
    checkpoint_every_steps: int | None = None
    log_every_steps: int = 50
    progress: str = "auto"  # auto (bar on a terminal, log lines otherwise) | bar | log | none
    measure_latency: bool = True
    latency_batch: int = 128  # the paper's speed axis: train-step and inference time at this batch
    latency_iters: int = 5
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    sync_bn: bool = True  # SyncBatchNorm under DDP: same statistics as one process at the global batch
    tasks: int = 1  # processes (one per GPU) that train this cell together with DDP
    fail_at_step: int | None = None  # fault injection for testing the orchestrator: raise at this step

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"runtime.precision={self.precision!r}: allowed {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise ValueError(f"runtime.device={self.device!r}: allowed {', '.join(DEVICES)}")
        if self.compile not in ("auto", True, False):
            raise ValueError(f"runtime.compile={self.compile!r}: allowed auto, true, false")
        _num("runtime", "compile_payback", self.compile_payback, lo=0, lo_open=True)
        _num("runtime", "seed", self.seed, lo=0, integer=True)
        _num("runtime", "tasks", self.tasks, lo=1, integer=True)
        _num("runtime", "max_steps", self.max_steps, lo=1, integer=True, allow_none=True)
        # the knobs outside the hash too: a bad value fails here, not after launch
        _num("runtime", "threads", self.threads, lo=1, integer=True, allow_none=True)
        for key in (
            "eval_batch_size",
            "eval_every_epochs",
            "log_every_steps",
            "latency_batch",
            "latency_iters",
        ):
            _num("runtime", key, getattr(self, key), lo=1, integer=True)
        _num("runtime", "checkpoint_every_epochs", self.checkpoint_every_epochs, lo=0, integer=True)
        _num("runtime", "checkpoint_every_minutes", self.checkpoint_every_minutes, lo=0)
        _num(
            "runtime",
            "checkpoint_every_steps",
            self.checkpoint_every_steps,
            lo=1,
            integer=True,
            allow_none=True,
        )
        _num("runtime", "fail_at_step", self.fail_at_step, lo=0, integer=True, allow_none=True)
        for key in ("channels_last", "deterministic", "measure_latency", "sync_bn"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"runtime.{key} must be true or false, got {getattr(self, key)!r}")
        if self.progress is not None and self.progress not in PROGRESS_MODES:  # null: none
            raise ValueError(f"runtime.progress={self.progress!r}: allowed {', '.join(PROGRESS_MODES)}")


@dataclass(frozen=True)
class LoggerConfig:
    """The `logger:` group. Weights & Biases is a dashboard; the run record is the source of truth."""

    mode: str = (
        "auto"  # auto (online with an API key, else offline for `wandb sync`) | online | offline | disabled
    )
    project: str = "rsscale"
    entity: str | None = None
    group: str | None = None  # default: the sweep name
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in LOGGER_MODES:
            raise ValueError(f"logger.mode={self.mode!r}: allowed {', '.join(LOGGER_MODES)}")


# The schema of each hand-checked group (model and data have their own error messages).
SCHEMAS: dict[str, type] = {"recipe": RecipeConfig, "runtime": RuntimeConfig, "logger": LoggerConfig}


def register_schema() -> None:
    """The presets' base nodes in Hydra's ConfigStore: ``schema/<group>`` (``schema/data/<dataset>``).

    A preset in conf/ starts its defaults list with ``/schema/<group>@_here_`` and overrides only what
    differs. Plain dicts (not typed nodes), so that rsscale's validation names a bad field.
    """
    cs = ConfigStore.instance()
    cs.store(group="schema", name="model", node=preset_node(ResNetRSConfig))
    for name in DATASETS:
        cs.store(group="schema/data", name=name, node=data_preset_node(name))
    for group, cls in SCHEMAS.items():
        cs.store(group="schema", name=group, node=preset_node(cls))


register_schema()  # at import: `python -m rsscale.sweep` composes through @hydra.main


def _unknown(group: str):
    def error(keys: list[str], allowed: tuple[str, ...]) -> ValueError:
        return ValueError(f"{group}.{keys[0]} is not a known field; allowed: {', '.join(sorted(allowed))}")

    return error


def check_unknown_keys(group: str, section: Mapping[str, Any]) -> None:
    """An unknown field (e.g. a `+recipe.lr=0.1` typo, which Hydra accepts) is an error, not ignored."""
    allowed = cell_fields(SCHEMAS[group])
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise _unknown(group)(unknown, allowed)


def validate_recipe(recipe: Mapping[str, Any]) -> RecipeConfig:
    return from_mapping(RecipeConfig, recipe, _unknown("recipe"))


def validate_runtime(runtime: Mapping[str, Any], batch_size: int, grad_accum: int) -> RuntimeConfig:
    rt = from_mapping(RuntimeConfig, runtime, _unknown("runtime"))
    if batch_size % (rt.tasks * grad_accum):
        raise ValueError(
            f"recipe.batch_size={batch_size} is not divisible by runtime.tasks x recipe.grad_accum_steps "
            f"= {rt.tasks} x {grad_accum}: every DDP rank needs the same micro-batch"
        )
    return rt


@dataclass(frozen=True)
class CellConfig:
    """A resolved cell config as the typed groups (what `typed_cell` returns); the plain dict stays the
    contract (records, hashes), this is how code reads it with the schema's defaults filled in."""

    model: ResNetRSConfig
    data: DataConfig
    recipe: RecipeConfig
    runtime: RuntimeConfig
    logger: LoggerConfig


def typed_cell(cell: Mapping[str, Any], *, check_data_files: bool = True) -> CellConfig:
    """Every check that can fail before training starts (ValueError naming the field); the typed groups."""
    for g in CELL_GROUPS:
        if not isinstance(cell.get(g), Mapping):
            raise ValueError(f"config group {g!r} is missing")
    for g in ("recipe", "runtime", "logger"):
        check_unknown_keys(g, cell[g])
    recipe = validate_recipe(cell["recipe"])
    runtime = validate_runtime(cell["runtime"], int(recipe.batch_size), int(recipe.grad_accum_steps))
    model = from_model_cfg(cell["model"])
    data = validated_data_config(cell["data"]) if check_data_files else data_config(cell["data"])
    check_batch_fits(data, int(recipe.batch_size))
    logger = from_mapping(LoggerConfig, cell["logger"], _unknown("logger"))
    return CellConfig(model, data, recipe, runtime, logger)


def validate_cell(cell: Mapping[str, Any], *, check_data_files: bool = True) -> None:
    """Every check that can fail before training starts; ValueError names the field."""
    typed_cell(cell, check_data_files=check_data_files)


def cell_label(cell: Mapping[str, Any]) -> str:
    """A readable prefix for a cell's directory: depth, width, resolution, epochs."""
    m, d, r = cell["model"], cell["data"], cell["recipe"]
    depth = m["depth"] if not m.get("blocks") else "b" + "-".join(map(str, m["blocks"]))
    return f"d{depth}-w{float(m['width']):g}-r{d['train_res']}-e{r['epochs']}"


def cell_id(cell: Mapping[str, Any], h: str | None = None) -> str:
    return f"{cell_label(cell)}-{(h or cell_hash(cell))[:8]}"
