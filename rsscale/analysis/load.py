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

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from rsscale.analysis.columns import (
    COLUMNS,
    SCHEMA,
    TABLE_OPTIONAL,
    TABLE_REQUIRED,
    LoadError,
    axes_to_row,
    normalize,
    record_to_row,
    schema_markdown,
)
from rsscale.analysis.wandb_source import load_wandb
from rsscale.launch.manifest import Manifest, ManifestError
from rsscale.layout import RECORD_NAME, SweepLayout
from rsscale.train.record_file import load_record

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "LoadError",
    "is_sweep_dir",
    "load_results",
    "load_source",
    "load_sweep",
    "load_table",
    "normalize",
    "record_to_row",
    "schema_markdown",
]

# ---------------------------------------------------------------------------------- sources


def is_sweep_dir(path: str | os.PathLike) -> bool:
    return SweepLayout(path).looks_like_sweep()


def load_sweep(path: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Rows for every cell of a sweep directory; notes about what could not be read."""
    p = Path(path)
    layout = SweepLayout(p)
    notes: list[str] = []
    if not p.exists():
        raise LoadError(f"{p}: no such directory")
    if not p.is_dir():
        raise LoadError(f"{p}: not a directory")
    if not layout.looks_like_sweep():
        raise LoadError(f"{p}: not a sweep directory (no manifest.json and no cells/)")
    mcells: dict[str, Any] = {}
    if layout.manifest.is_file():
        try:
            mcells = Manifest.load(p).cells
        except ManifestError as e:
            notes.append(f"{layout.manifest}: unreadable manifest ({e.reason}); reading cells/ only")
    cell_ids = [d.name for d in layout.cell_dirs()]
    cell_ids += [cid for cid in mcells if cid not in set(cell_ids)]
    if not cell_ids:
        raise LoadError(f"{p}: empty sweep directory (no cells in manifest.json or cells/)")
    rows = []
    for cid in cell_ids:
        minfo = mcells.get(cid) if isinstance(mcells.get(cid), dict) else {}
        row, note = _cell_row(str(p), layout.cell(cid).dir, cid, minfo)
        if note:
            notes.append(note)
        rows.append(row)
    return pd.DataFrame(rows), notes


def _cell_row(
    source: str, cell_dir: Path, cid: str, minfo: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """One cell's row from its record (or from its manifest entry alone); a note if it is unreadable."""
    axes = axes_to_row(minfo.get("axes"))
    rpath = cell_dir / RECORD_NAME
    try:
        rec = load_record(cell_dir)
        if rec is not None and not isinstance(rec, dict):
            raise ValueError("record is not a JSON object")
    except (OSError, ValueError) as e:
        row = {"source": source, "cell_id": cid, "cell_hash": minfo.get("hash"), "status": "malformed"}
        row.update(axes)
        row["note"] = f"malformed record: {rpath}: {e}"
        return row, f"{rpath}: malformed record ({e}); the cell is left out of the fits"
    if rec is None:
        row = {"source": source, "cell_id": cid, "cell_hash": minfo.get("hash")}
        row.update(axes)
        row["status"] = "pending"
        mstat = minfo.get("status")
        row["note"] = f"no record.json yet (manifest status: {mstat})" if mstat else "no record.json"
        return row, None
    row = record_to_row(rec, source)
    if not row.get("cell_id"):
        row["cell_id"] = cid
    if row.get("status") != "malformed":
        return row, None
    for k, v in axes.items():
        if row.get(k) is None or (isinstance(row.get(k), float) and math.isnan(row[k])):
            row[k] = v
    return row, f"{rpath}: {row['note']}; the cell is left out of the fits"


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
        return load_wandb(s[len("wandb:") :], **wandb_kw)
    p = Path(s)
    if p.is_dir():
        return load_sweep(p)
    if p.is_file():
        if p.suffix.lower() in (".csv", ".parquet", ".pq", ".tsv"):
            return load_table(p)
        raise LoadError(f"{p}: unknown file type (expected a sweep directory, .csv or .parquet)")
    raise LoadError(f"{p}: no such file or directory")


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
