"""Results from a W&B project or group, through ``wandb.Api``, cached to local parquet.

``load_wandb("ENTITY/PROJECT[/GROUP]")`` lists the runs with ``api.runs(path, filters,
per_page=...)`` and walks the returned paginator by index, so that a page fetch that fails with
HTTP 429 (rate limited) is retried with exponential backoff without skipping runs. Every run is
mapped to one row of :data:`rsscale.analysis.columns.SCHEMA`:

- if the run's summary holds the whole run record under ``record`` (a dict or JSON string), that
  record is used as is (the same path as a sweep directory);
- otherwise the row is assembled from ``run.config`` (the resolved cell config: nested dicts,
  or flattened ``model.depth`` / ``model/depth`` keys) and ``run.summary`` (keys tried in order:
  ``final/top1``, ``final.top1``, ``final`` dict, ``top1``; likewise ``cost/flops_per_image``...).

The recorder puts ``cell_id`` and ``cell_hash`` in every run's config (and summary), so a W&B row
and the sweep directory's row of the same cell share a ``cell_hash`` and ``load_results`` keeps one.
The run state maps to the status (finished -> completed, crashed/failed -> failed, running ->
running) unless the summary or config carries ``status``. The normalised table is written to
``CACHE_DIR/wandb_<entity>_<project>[_<group>].parquet`` and read from there next time unless
``refresh=True``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rsscale.analysis.columns import LoadError, normalize, record_to_row

DEFAULT_CACHE = Path.home() / ".cache" / "rsscale" / "wandb"
_STATE = {
    "finished": "completed",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
    "running": "running",
    "pending": "pending",
    "preempted": "preempted",
    "preempting": "preempted",
}


def is_rate_limited(exc: BaseException) -> bool:
    """True if the exception (or one it wraps) is an HTTP 429 / rate-limit error."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for obj in (e, getattr(e, "response", None)):
            code = getattr(obj, "status_code", None) or getattr(obj, "status", None)
            if code == 429:
                return True
        msg = str(e).lower()
        if "429" in msg or "rate limit" in msg or "too many requests" in msg:
            return True
        e = getattr(e, "exc", None) or e.__cause__ or e.__context__
    return False


def with_backoff(
    fn: Callable[[], Any],
    retries: int = 8,
    base: float = 1.0,
    cap: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> Any:
    """Call ``fn``; on a rate-limit error wait base*2^k seconds (capped) and retry."""
    for k in range(retries + 1):
        try:
            return fn()
        except Exception as e:
            if not is_rate_limited(e) or k == retries:
                raise
            wait = min(cap, base * 2**k)
            if on_retry:
                on_retry(k, wait, e)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _flat(d: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    if isinstance(d, Mapping):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            key = key.replace("/", ".")
            if isinstance(v, Mapping) and not ("value" in v and len(v) <= 2):
                _flat(v, key, out)
            else:
                # W&B's raw config format wraps values as {"value": x, "desc": ...}
                out[key] = v["value"] if isinstance(v, Mapping) and "value" in v else v
    return out


def _pick(flat: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = flat.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return v
    return None


def _summary_dict(run: Any) -> dict[str, Any]:
    s = getattr(run, "summary", None)
    if s is None:
        return {}
    d = getattr(s, "_json_dict", None)
    if isinstance(d, Mapping):
        return dict(d)
    try:
        return dict(s)
    except Exception:
        return {}


def run_to_row(run: Any, source: str) -> dict[str, Any]:
    """One W&B run (an object shaped like ``wandb.apis.public.Run``) to one schema row."""
    summ = _summary_dict(run)
    cfg = getattr(run, "config", None) or {}
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    rec = summ.get("record")
    if isinstance(rec, str):
        try:
            rec = json.loads(rec)
        except ValueError:
            rec = None
    if isinstance(rec, Mapping):
        row = record_to_row(dict(rec), source)
    else:
        c = _flat(cfg)
        s = _flat(summ)
        row = {
            "source": source,
            "cell_id": _pick(c, "cell_id") or _pick(s, "cell_id") or getattr(run, "name", None),
            "cell_hash": _pick(c, "cell_hash") or _pick(s, "cell_hash"),
            "dataset": _pick(c, "data.name", "dataset"),
            "depth": _pick(c, "model.depth", "depth"),
            "width": _pick(c, "model.width", "width"),
            "resolution": _pick(c, "data.train_res", "train_res", "resolution"),
            "eval_res": _pick(c, "data.eval_res", "eval_res"),
            "epochs": _pick(c, "recipe.epochs", "epochs"),
            "recipe": _pick(c, "recipe.name", "recipe"),
            "seed": _pick(c, "runtime.seed", "seed"),
            "precision": _pick(c, "runtime.precision", "precision"),
            "batch_size": _pick(c, "recipe.batch_size", "batch_size"),
            "flops": _pick(s, "cost.flops_per_image", "flops_per_image", "flops"),
            "params": _pick(s, "cost.params", "params"),
            "train_step_s": _pick(s, "cost.train_step_s", "train_step_s"),
            "infer_s": _pick(s, "cost.infer_s", "infer_s"),
            "latency_batch": _pick(s, "cost.latency_batch", "latency_batch"),
            "images_per_s": _pick(s, "cost.images_per_s"),
            "peak_mem_bytes": _pick(s, "cost.peak_mem_bytes", "peak_mem_bytes"),
            "train_time_s": _pick(s, "cost.train_time_s", "train_time_s"),
            "top1": _pick(s, "final.top1", "top1"),
            "top5": _pick(s, "final.top5", "top5"),
            "val_top1": _pick(s, "final.val_top1", "val_top1"),
            "minival_top1": _pick(s, "final.minival_top1", "minival_top1"),
            "best_minival_top1": _pick(s, "final.best_minival_top1", "best_minival_top1"),
            "status": _pick(s, "status") or _pick(c, "status"),
            "error_class": _pick(s, "error_class"),
            "message": _pick(s, "error"),
            "git_commit": _pick(c, "provenance.git_commit", "git_commit"),
            "hostname": _pick(c, "provenance.hostname", "hostname"),
            "created": getattr(run, "created_at", None),
        }
        if row["status"] is None:
            state = str(getattr(run, "state", "") or "").lower()
            row["status"] = _STATE.get(state, state or "unknown")
        if row["status"] == "completed" and row["top1"] is None:
            row["note"] = "run finished but its summary has no top1 (final/top1)"
    row["wandb_run_id"] = getattr(run, "id", None) or row.get("wandb_run_id")
    return row


def parse_path(path: str) -> tuple[str, str, str | None]:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) not in (2, 3):
        raise LoadError(f"wandb:{path}: expected wandb:ENTITY/PROJECT[/GROUP]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def iter_runs(runs: Any, retries: int = 8, base: float = 1.0, sleep: Callable[[float], None] = time.sleep):
    """Yield every run of a W&B paginator, retrying rate-limited page fetches by index."""
    i = 0
    while True:
        try:
            run = with_backoff(lambda i=i: runs[i], retries=retries, base=base, sleep=sleep)
        except IndexError:
            return
        yield run
        i += 1


def load_wandb(
    path: str,
    api: Any = None,
    cache_dir: str | Path | None = None,
    refresh: bool = False,
    per_page: int = 100,
    retries: int = 8,
    backoff_base: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[pd.DataFrame, list[str]]:
    """Rows for every run of ``ENTITY/PROJECT[/GROUP]`` (``api``: a ``wandb.Api``-like object)."""
    entity, project, group = parse_path(path)
    source = f"wandb:{entity}/{project}" + (f"/{group}" if group else "")
    cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(x for x in (entity, project, group) if x))
    cache = cache_dir / f"wandb_{safe}.parquet"
    notes: list[str] = []
    if cache.is_file() and not refresh:
        notes.append(f"{source}: read from cache {cache} (refresh to re-download)")
        return pd.read_parquet(cache), notes
    if api is None:
        try:
            import wandb
        except ImportError as e:  # pragma: no cover
            raise LoadError("wandb is not installed") from e
        try:
            api = wandb.Api(timeout=60)
        except Exception as e:
            raise LoadError(f"{source}: cannot open the W&B API ({e})") from e
    filters = {"group": group} if group else None
    retried: list[float] = []
    runs = with_backoff(
        lambda: api.runs(f"{entity}/{project}", filters=filters, per_page=per_page),
        retries=retries,
        base=backoff_base,
        sleep=sleep,
    )
    rows = []

    def count_sleep(t: float) -> None:
        retried.append(t)
        sleep(t)

    for run in iter_runs(runs, retries=retries, base=backoff_base, sleep=count_sleep):
        try:
            rows.append(
                with_backoff(lambda r=run: run_to_row(r, source), retries, backoff_base, 60.0, count_sleep)
            )
        except Exception as e:
            rows.append(
                {
                    "source": source,
                    "cell_id": getattr(run, "name", None),
                    "wandb_run_id": getattr(run, "id", None),
                    "status": "malformed",
                    "note": f"cannot read W&B run: {type(e).__name__}: {e}",
                }
            )
            notes.append(f"{source}: run {getattr(run, 'id', '?')} unreadable ({e})")
    if retried:
        notes.append(f"{source}: rate limited {len(retried)} time(s); waited {sum(retried):.0f} s in total")
    if not rows:
        raise LoadError(f"{source}: no runs found")
    df = normalize(pd.DataFrame(rows))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(cache)
    return df, notes
