"""Load results into one pandas DataFrame, one row per cell, with a fixed schema.

Sources:

- a sweep directory (``SWEEP_DIR/manifest.json`` + ``SWEEP_DIR/cells/<cell_id>/record.json``,
  docs/contracts.md). Cells listed in the manifest without a record are kept with status
  ``pending``; unreadable or incomplete records are kept with status ``malformed`` and a note;
- a CSV or parquet table with at least ``depth, width, resolution, epochs, flops, top1`` (top1 a
  fraction) and optionally ``train_step_s, infer_s, params, status, dataset`` (and any other
  schema column);
- a W&B project/group, ``wandb:ENTITY/PROJECT[/GROUP]`` (see :mod:`rsscale.analysis.wandb_source`).

Failed, diverged, running, pending and malformed cells stay in the table; the ``usable`` column
says which rows the fits use, and ``note`` says why a row is not usable.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    "error": ("float64", "1 - top1"),
    "status": (
        "string",
        "completed|failed|diverged|preempted|running (record), pending (manifest only), malformed",
    ),
    "error_class": ("string", "oom|diverged|timeout|node_failure|code_error|preempted|cancelled"),
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
RECORD_STATUSES = ("running", "completed", "failed", "diverged", "preempted")


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


def record_to_row(rec: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Flatten one run record (schema_version 1) into a row of :data:`SCHEMA`."""
    cfg = rec.get("config") or {}
    final = rec.get("final") or {}
    cost = rec.get("cost") or {}
    prov = rec.get("provenance") or {}
    hw = prov.get("hardware")
    row = {
        "source": source,
        "cell_id": rec.get("cell_id"),
        "cell_hash": rec.get("cell_hash"),
        "dataset": _get(cfg, "data", "name"),
        "depth": _num(_get(cfg, "model", "depth")),
        "width": _num(_get(cfg, "model", "width")),
        "resolution": _num(_get(cfg, "data", "train_res")),
        "eval_res": _num(_get(cfg, "data", "eval_res")),
        "epochs": _num(_get(cfg, "recipe", "epochs")),
        "recipe": _get(cfg, "recipe", "name"),
        "seed": _num(_get(cfg, "runtime", "seed")),
        "precision": _get(cfg, "runtime", "precision"),
        "batch_size": _num(_get(cfg, "recipe", "batch_size")),
        "flops": _num(cost.get("flops_per_image")),
        "params": _num(cost.get("params")),
        "train_step_s": _num(cost.get("train_step_s")),
        "infer_s": _num(cost.get("infer_s")),
        "latency_batch": _num(cost.get("latency_batch")),
        "images_per_s": _num(cost.get("images_per_s")),
        "peak_mem_bytes": _num(cost.get("peak_mem_bytes")),
        "train_time_s": _num(cost.get("train_time_s")),
        "top1": _num(final.get("top1")),
        "top5": _num(final.get("top5")),
        "val_top1": _num(final.get("val_top1")),
        "minival_top1": _num(final.get("minival_top1")),
        "best_minival_top1": _num(final.get("best_minival_top1")),
        "status": rec.get("status"),
        "error_class": rec.get("error_class"),
        "message": rec.get("error"),
        "attempts": _num(rec.get("attempts")),
        "git_commit": prov.get("git_commit"),
        "torch_version": _get(prov, "versions", "torch"),
        "hostname": prov.get("hostname"),
        "hardware": json.dumps(hw, sort_keys=True, default=str) if hw is not None else None,
        "wandb_run_id": prov.get("wandb_run_id"),
        "slurm_job_id": None if prov.get("slurm_job_id") is None else str(prov.get("slurm_job_id")),
        "created": rec.get("created"),
        "finished": rec.get("finished"),
    }
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
    "dataset": ("data.name", "dataset", "data"),
}


def _axes_to_row(axes: Any) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------- sources


def is_sweep_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "manifest.json").is_file() or (p / "cells").is_dir())


def load_sweep(path: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Rows for every cell of a sweep directory; notes about what could not be read."""
    p = Path(path)
    notes: list[str] = []
    if not p.exists():
        raise LoadError(f"{p}: no such directory")
    if not p.is_dir():
        raise LoadError(f"{p}: not a directory")
    manifest: dict[str, Any] = {}
    mpath = p / "manifest.json"
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as e:
            notes.append(f"{mpath}: unreadable manifest ({e}); reading cells/ only")
            manifest = {}
    mcells = manifest.get("cells") if isinstance(manifest, dict) else None
    if not isinstance(mcells, dict):
        mcells = {}
    cells_dir = p / "cells"
    if not mpath.is_file() and not cells_dir.is_dir():
        raise LoadError(f"{p}: not a sweep directory (no manifest.json and no cells/)")
    cell_dirs: dict[str, Path] = {}
    if cells_dir.is_dir():
        for d in sorted(cells_dir.iterdir()):
            if d.is_dir():
                cell_dirs[d.name] = d
    for cid, info in mcells.items():
        cd = info.get("cell_dir") if isinstance(info, dict) else None
        if cid not in cell_dirs:
            cdp = Path(cd) if cd else cells_dir / cid
            if not cdp.is_absolute():
                cdp = p / cdp
            cell_dirs[cid] = cdp
    if not cell_dirs:
        raise LoadError(f"{p}: empty sweep directory (no cells in manifest.json or cells/)")
    rows = []
    for cid, cdir in cell_dirs.items():
        minfo = mcells.get(cid, {}) if isinstance(mcells.get(cid), dict) else {}
        rpath = cdir / "record.json"
        if not rpath.is_file():
            row = {"source": str(p), "cell_id": cid, "cell_hash": minfo.get("hash")}
            row.update(_axes_to_row(minfo.get("axes")))
            row["status"] = "pending"
            mstat = minfo.get("status")
            row["note"] = f"no record.json yet (manifest status: {mstat})" if mstat else "no record.json"
            rows.append(row)
            continue
        try:
            rec = json.loads(rpath.read_text())
            if not isinstance(rec, dict):
                raise ValueError("record is not a JSON object")
        except (OSError, ValueError) as e:
            row = {"source": str(p), "cell_id": cid, "cell_hash": minfo.get("hash"), "status": "malformed"}
            row.update(_axes_to_row(minfo.get("axes")))
            row["note"] = f"malformed record: {rpath}: {e}"
            notes.append(f"{rpath}: malformed record ({e}); the cell is left out of the fits")
            rows.append(row)
            continue
        row = record_to_row(rec, str(p))
        if not row.get("cell_id"):
            row["cell_id"] = cid
        if row.get("status") == "malformed":
            notes.append(f"{rpath}: {row['note']}; the cell is left out of the fits")
            for k, v in _axes_to_row(minfo.get("axes")).items():
                if row.get(k) is None or (isinstance(row.get(k), float) and math.isnan(row[k])):
                    row[k] = v
        rows.append(row)
    return pd.DataFrame(rows), notes


def load_table(path: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """A CSV or parquet table of results from elsewhere (see the module doc for its columns)."""
    p = Path(path)
    if not p.is_file():
        raise LoadError(f"{p}: no such file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p)
    except Exception as e:
        raise LoadError(f"{p}: cannot read table ({type(e).__name__}: {e})") from e
    missing = [c for c in TABLE_REQUIRED if c not in df.columns]
    if missing:
        raise LoadError(
            f"{p}: missing required column(s) {', '.join(missing)}; a results table needs "
            f"{', '.join(TABLE_REQUIRED)} (top1 a fraction in [0, 1]) and may have "
            f"{', '.join(TABLE_OPTIONAL)}"
        )
    notes = []
    df = df.copy()
    if "status" not in df.columns:
        df["status"] = "completed"
    if "dataset" not in df.columns:
        df["dataset"] = "unknown"
        notes.append(f"{p}: no dataset column; rows labelled dataset 'unknown'")
    df["source"] = str(p)
    if "cell_id" not in df.columns:
        df["cell_id"] = [f"{p.stem}-{i}" for i in range(len(df))]
    return df, notes


def load_source(source: str | os.PathLike, **wandb_kw: Any) -> tuple[pd.DataFrame, list[str]]:
    s = str(source)
    if s.startswith("wandb:"):
        from rsscale.analysis.wandb_source import load_wandb

        return load_wandb(s[len("wandb:") :], **wandb_kw)
    p = Path(s)
    if p.is_dir():
        return load_sweep(p)
    if p.is_file():
        if p.suffix.lower() in (".csv", ".parquet", ".pq", ".tsv"):
            return load_table(p)
        raise LoadError(f"{p}: unknown file type (expected a sweep directory, .csv or .parquet)")
    raise LoadError(f"{p}: no such file or directory")


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


def load_results(sources: list[str | os.PathLike] | str | os.PathLike, **wandb_kw: Any) -> pd.DataFrame:
    """Load every source into one normalised DataFrame; notes go to ``df.attrs['notes']``.

    Raises :class:`LoadError` when a source cannot be read at all.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    frames, notes = [], []
    for s in sources:
        df, n = load_source(s, **wandb_kw)
        frames.append(df)
        notes.extend(n)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df = normalize(df)
    if df["cell_hash"].notna().any():
        dup = df["cell_hash"].notna() & df.duplicated(subset=["cell_hash"], keep="first")
        if dup.any():
            notes.append(f"{int(dup.sum())} duplicate cell(s) (same cell_hash in several sources) dropped")
            df = df[~dup].reset_index(drop=True)
    bad = df[~df["usable"]]
    if len(bad):
        counts = bad["status"].value_counts().to_dict()
        desc = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        notes.append(f"{len(bad)} of {len(df)} cell(s) left out of the fits ({desc}); see the note column")
    df.attrs["notes"] = notes
    return df
