"""The results table: its columns (one row per cell) and the mapping of a run record to a row.

Every source (sweep directory, CSV/parquet table, W&B) ends in :func:`normalize`, so that the fits
see one schema whatever the results came from. Record statuses and error classes are those of
:mod:`rsscale.states`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from rsscale.states import ERROR_CLASSES, RECORD_STATUSES

# column -> (dtype, description). The order is the column order of every loaded table.
SCHEMA: dict[str, tuple[str, str]] = {
    "source": ("string", "where the row came from: sweep dir, table path or wandb:ENTITY/PROJECT[/GROUP]"),
    "cell_id": ("string", "readable cell id (axes + 8 hex of the hash)"),
    "cell_hash": ("string", "16-hex hash of the result-changing config fields"),
    "dataset": ("string", "data.name, e.g. fashion_mnist"),
    "depth": ("Int64", "model.depth (ResNet-RS depth, e.g. 50)"),
    "width": ("float64", "model.width multiplier"),
    "resolution": ("Int64", "data.train_res, pixels"),
    "eval_res": ("Int64", "data.eval_res, pixels"),
    "epochs": ("float64", "recipe.epochs (the epoch budget)"),
    "train_size": (
        "Int64",
        "training images after minival and data.train_subset (cost.train_images; else data.train_subset)",
    ),
    "recipe": ("string", "recipe.name"),
    "seed": ("Int64", "runtime.seed"),
    "precision": ("string", "runtime.precision"),
    "batch_size": ("Int64", "recipe.batch_size"),
    "flops": ("float64", "forward FLOPs per image at train_res (2 x MACs), cost.flops_per_image"),
    "params": ("float64", "parameter count, cost.params"),
    "train_step_s": ("float64", "measured training-step time, seconds per step at latency_batch"),
    "infer_s": ("float64", "measured inference time, seconds per batch at latency_batch"),
    "latency_batch": ("Int64", "batch size of the latency measurements"),
    "images_per_s": ("float64", "training throughput, images per second"),
    "peak_mem_bytes": ("float64", "peak accelerator memory, bytes"),
    "train_time_s": ("float64", "wall time of the whole training run, seconds"),
    "top1": ("float64", "headline val top-1 (EMA weights if EMA is on), fraction in [0, 1]"),
    "top5": ("float64", "headline val top-5, fraction"),
    "val_top1": ("float64", "val top-1 of the raw weights, fraction"),
    "minival_top1": ("float64", "final minival top-1, fraction"),
    "best_minival_top1": ("float64", "best minival top-1 over epochs, fraction"),
    "train_top1": ("float64", "top-1 on a clean training subset the size of minival (end of run), fraction"),
    "generalization_gap": ("float64", "train_top1 - minival top-1 of the same weights (over-fitting)"),
    "error": ("float64", "1 - top1"),
    "status": (
        "string",
        "|".join(RECORD_STATUSES) + " (record), pending (manifest only), malformed",
    ),
    "error_class": ("string", "|".join(ERROR_CLASSES)),
    "message": ("string", "the run's error message, if any"),
    "usable": ("bool", "completed, with finite positive flops and top1 in [0, 1]: used by the fits"),
    "note": ("string", "why a row is not usable, or what the loader had to assume"),
    "attempts": ("Int64", "number of starts of the cell"),
    "git_commit": ("string", "provenance.git_commit"),
    "torch_version": ("string", "provenance.versions.torch"),
    "hostname": ("string", "provenance.hostname"),
    "hardware": ("string", "provenance.hardware as JSON"),
    "wandb_run_id": ("string", "provenance.wandb_run_id"),
    "slurm_job_id": ("string", "provenance.slurm_job_id"),
    "created": ("string", "ISO 8601"),
    "finished": ("string", "ISO 8601 or empty"),
}
COLUMNS = list(SCHEMA)
TABLE_REQUIRED = ("depth", "width", "resolution", "epochs", "flops", "top1")
TABLE_OPTIONAL = ("train_step_s", "infer_s", "params", "status", "dataset")


class LoadError(ValueError):
    """A source cannot be read at all (missing, empty, or lacking required columns)."""


def schema_markdown() -> str:
    lines = ["| column | dtype | meaning |", "|---|---|---|"]
    lines += [f"| `{c}` | {t} | {d} |" for c, (t, d) in SCHEMA.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ helpers


def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _num(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


_COST_KEYS = (
    "params",
    "train_step_s",
    "infer_s",
    "latency_batch",
    "images_per_s",
    "peak_mem_bytes",
    "train_time_s",
)
# column -> where the run record (docs/contracts.md) holds it; string columns are taken as they are,
# the others as numbers (NaN when missing)
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "cell_id": ("cell_id",),
    "cell_hash": ("cell_hash",),
    "dataset": ("config", "data", "name"),
    "depth": ("config", "model", "depth"),
    "width": ("config", "model", "width"),
    "resolution": ("config", "data", "train_res"),
    "eval_res": ("config", "data", "eval_res"),
    "epochs": ("config", "recipe", "epochs"),
    "recipe": ("config", "recipe", "name"),
    "seed": ("config", "runtime", "seed"),
    "precision": ("config", "runtime", "precision"),
    "batch_size": ("config", "recipe", "batch_size"),
    "flops": ("cost", "flops_per_image"),
    **{k: ("cost", k) for k in _COST_KEYS},
    "train_size": ("cost", "train_images"),
    **{
        k: ("final", k)
        for k in (
            "top1",
            "top5",
            "val_top1",
            "minival_top1",
            "best_minival_top1",
            "train_top1",
            "generalization_gap",
        )
    },
    "status": ("status",),
    "error_class": ("error_class",),
    "message": ("error",),
    "attempts": ("attempts",),
    "git_commit": ("provenance", "git_commit"),
    "torch_version": ("provenance", "versions", "torch"),
    "hostname": ("provenance", "hostname"),
    "wandb_run_id": ("provenance", "wandb_run_id"),
    "created": ("created",),
    "finished": ("finished",),
}


def record_to_row(rec: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Flatten one run record (schema_version 1) into a row of :data:`SCHEMA`."""
    cfg = rec.get("config") or {}
    row: dict[str, Any] = {"source": source}
    for col, path in RECORD_FIELDS.items():
        v = _get(rec, *path)
        row[col] = v if SCHEMA[col][0] == "string" else _num(v)
    if math.isnan(row["train_size"]):  # records before cost.train_images: the configured subset
        row["train_size"] = _num(_get(cfg, "data", "train_subset"))
    hw = _get(rec, "provenance", "hardware")
    row["hardware"] = json.dumps(hw, sort_keys=True, default=str) if hw is not None else None
    job = _get(rec, "provenance", "slurm_job_id")
    row["slurm_job_id"] = None if job is None else str(job)  # an int column would come back as "123.0"
    problems = []
    if rec.get("schema_version") not in (1, None):
        problems.append(f"schema_version {rec.get('schema_version')!r} (expected 1)")
    if not isinstance(cfg, dict) or not cfg:
        problems.append("no config")
    if row["status"] not in RECORD_STATUSES:
        problems.append(f"unknown status {row['status']!r}")
    if problems:
        row["status"] = "malformed"
        row["note"] = "malformed record: " + "; ".join(problems)
    return row


_AXIS_KEYS = {
    "depth": ("model.depth", "depth"),
    "width": ("model.width", "width"),
    "resolution": ("data.train_res", "train_res", "resolution", "res"),
    "epochs": ("recipe.epochs", "epochs"),
    "train_size": ("data.train_subset", "train_subset", "train_size"),
    "dataset": ("data.name", "dataset", "data"),
}


def axes_to_row(axes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(axes, dict):
        return out
    flat = {}
    for k, v in axes.items():
        flat[str(k).lstrip("+")] = v
    for col, keys in _AXIS_KEYS.items():
        for k in keys:
            if k in flat:
                out[col] = flat[k] if col == "dataset" else _num(flat[k])
                break
    return out


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Give ``df`` exactly the schema columns (extra columns kept at the end), dtypes, derived
    ``error``, ``usable`` and ``note``."""
    df = df.copy()
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    for c, (t, _) in SCHEMA.items():
        if c in ("usable",):
            continue
        if t == "string":
            df[c] = df[c].map(
                lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            )
            df[c] = df[c].astype("string")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce")
            if t == "Int64":
                vals = df[c].to_numpy(dtype=float, na_value=np.nan)
                integral = np.isnan(vals) | (vals == np.round(vals))
                df[c] = pd.array(np.where(integral, vals, np.nan), dtype="Float64").round().astype("Int64")
            else:
                df[c] = df[c].astype("float64")
    df["status"] = df["status"].fillna("unknown").str.lower()
    df["error"] = 1.0 - df["top1"]
    notes = df["note"].astype("object").where(df["note"].notna(), None).tolist()
    usable = []
    for i, r in enumerate(df.itertuples(index=False)):
        why = []
        if r.status != "completed":
            why.append(f"status {r.status}")
        else:
            for col in ("depth", "width", "resolution", "epochs"):
                v = getattr(r, col)
                if v is pd.NA or v is None or (isinstance(v, float) and not math.isfinite(v)):
                    why.append(f"no {col}")
            fl = r.flops
            if not (isinstance(fl, float) and math.isfinite(fl) and fl > 0):
                why.append("no positive flops")
            t1 = r.top1
            if not (isinstance(t1, float) and math.isfinite(t1)):
                why.append("no top1")
            elif not (0.0 <= t1 <= 1.0):
                why.append(
                    f"top1 {t1:g} outside [0, 1]" + (" (a percentage? divide by 100)" if t1 <= 100 else "")
                )
            elif t1 >= 1.0:
                why.append("top1 = 1 (zero error cannot be fitted in log space)")
        usable.append(not why)
        if why and notes[i] is None:
            notes[i] = "; ".join(why)
    df["usable"] = np.array(usable, dtype=bool)
    df["note"] = pd.array(notes, dtype="string")
    extra = [c for c in df.columns if c not in SCHEMA]
    return df[COLUMNS + extra].reset_index(drop=True)
