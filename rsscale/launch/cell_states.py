"""The sweep's cell states: one row per cell from the manifest, the run records and one batched
job-state query per backend (for SLURM: one sacct call).

Works while jobs run and after the driver has exited; never polls jobs one by one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from rsscale.io import storage_error_in
from rsscale.launch.backends import Backend, BackendError, JobView, backend_named, job_log_files
from rsscale.launch.manifest import Manifest
from rsscale.launch.slurm import classify
from rsscale.states import OPEN_RECORD


def cell_rows(manifest: Manifest, cell_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    ids = list(cell_ids) if cell_ids is not None else list(manifest.cells)
    by_launcher: dict[str, list[str]] = defaultdict(list)  # the last job of each cell, per backend
    for cid in ids:
        subs = manifest.cells[cid]["submissions"]
        if subs:
            by_launcher[subs[-1]["launcher"]].append(subs[-1]["job_id"])
    backends = {name: reader(name) for name in by_launcher}
    states = {name: b.job_states(by_launcher[name]) if b else {} for name, b in backends.items()}
    rows = []
    for cid in ids:
        entry = manifest.cells[cid]
        last = entry["submissions"][-1] if entry["submissions"] else None
        backend = backends[last["launcher"]] if last else None
        job = states[last["launcher"]].get(last["job_id"]) if last else None
        rows.append(_row(manifest, cid, entry, backend, job))
    return rows


def _row(
    manifest: Manifest, cid: str, entry: dict, backend: Backend | None, job: JobView | None
) -> dict[str, Any]:
    rec = manifest.record(cid)
    subs = entry["submissions"]
    last = subs[-1] if subs else None
    status, error_class = derive_state(manifest, cid, rec, last, job, backend)
    history = (rec or {}).get("history") or []
    epochs = ((rec or {}).get("config") or {}).get("recipe", {}).get("epochs")
    key = (
        "minival_top1_ema" if any(h.get("minival_top1_ema") is not None for h in history) else "minival_top1"
    )
    best = max((h[key] for h in history if h.get(key) is not None), default=None)
    final = (rec or {}).get("final") or {}
    return {
        "cell_id": cid,
        "status": status,
        "error_class": error_class,
        "progress": f"{len(history)}/{epochs}" if epochs else "-",
        "best_minival_top1": best,
        "val_top1": final.get("top1"),
        "attempts": manifest.attempts(cid),
        "submissions": len(subs),
        "job_id": last["job_id"] if last else None,
        "slurm_state": job.state if job is not None else None,
        "resource_class": entry.get("resource_class"),
        "config_changed": (entry.get("config_changed") or {}).get("fields"),
    }


_QUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED")
_ACTIVE = ("RUNNING", "COMPLETING", "CONFIGURING")


def derive_state(
    manifest: Manifest,
    cid: str,
    rec: dict | None,
    last: dict | None,
    job: JobView | None,
    backend: Backend | None = None,
) -> tuple[str, Any]:
    """(status, error_class) from the evidence, in a fixed order: record, checkpoint, attempts log,
    scheduler (sacct) or process table. A cell nobody runs any more is never left `pending`/`running`:
    with a checkpoint it is `interrupted` (the next run resumes it), killed during start-up it is a
    `node_failure`, submitted but never started it is `interrupted`; one whose job's log ends in a
    storage error (it could not even write its record) is `failed` `storage`.
    """
    if last is not None and backend is None:
        backend = reader(last["launcher"])
    status, error_class = _derive_state(manifest, cid, rec, last, job, backend)
    ended = (status, error_class) in (("failed", "node_failure"), ("interrupted", None))
    if last is not None and ended and storage_error(manifest, cid):
        return "failed", "storage"
    return status, error_class


def reader(launcher: str) -> Backend | None:
    """The backend that made a submission, to read its jobs' states; None when this process does not
    know it (a backend registered elsewhere): its cells' states then come from their records."""
    try:
        return backend_named(launcher)
    except BackendError:
        return None


def storage_error(manifest: Manifest, cid: str) -> str | None:
    """The storage error (`PermissionError: [Errno 13] ... 'path'`) that ended the cell's last job,
    from the record or the job's log, or None."""
    rec = manifest.record(cid) or {}
    if rec.get("error_class") == "storage":
        return rec.get("error")
    subs = manifest.cells.get(cid, {}).get("submissions") or []
    if not subs:
        return None
    last = subs[-1]
    backend = reader(last["launcher"])
    job_id = str(last["job_id"])
    paths = (
        backend.log_files(manifest.layout.logs, job_id)
        if backend
        else job_log_files(manifest.layout.logs, job_id)
    )
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 65536))
                found = storage_error_in(f.read().decode(errors="replace"))
        except OSError:
            continue
        if found:
            return found
    return None


def _derive_state(
    manifest: Manifest,
    cid: str,
    rec: dict | None,
    last: dict | None,
    job: JobView | None,
    backend: Backend | None,
) -> tuple[str, Any]:
    if last is None:
        return ("new", None) if rec is None else (rec["status"], rec.get("error_class"))
    if rec is not None and rec["status"] not in OPEN_RECORD:
        return rec["status"], rec.get("error_class")  # completed, failed, diverged: final
    has_ckpt = any(p.exists() for p in manifest.layout.cell(cid).checkpoints)
    att = manifest.last_attempt(cid)
    if job is not None:  # a scheduler says whether anyone still runs it
        if job.state in _QUEUED:
            return ("pending" if rec is None and att is None else "requeued"), None
        if job.state in _ACTIVE:
            return "running", None
        if rec is None and has_ckpt:
            return "interrupted", None
        cls = classify(job.state)
        if cls is None:
            cls = (rec or {}).get("error_class") or ("node_failure" if att is not None else "cancelled")
        elif cls == "code_error":
            # a Python error always leaves a `failed` record: a job that ended without one was killed
            cls = "node_failure" if att is not None else "cancelled"
        return "failed", cls
    if backend is not None and backend.owns_cells:  # the driver runs it: the process table says
        alive = att is not None and backend.process_alive(att)
        if alive:
            return "running", None
        if rec is not None and rec["status"] == "preempted":
            return "preempted", "preempted"
        if rec is None and has_ckpt:
            return "interrupted", None
        if last.get("stopped_by") and (rec is None or rec["status"] == "running"):
            return "preempted", "preempted"  # the driver stopped it (a signal, fail_fast): not its fault
        if rec is not None and rec["status"] == "running":
            return "failed", "node_failure"  # the process died without a word
        if (
            rec is None
            and att is not None
            and backend.manifest_job_id(str(att.get("job_id"))) == last["job_id"]
        ):
            return "failed", "node_failure"  # killed during start-up (a Python error leaves a record)
        if _driver_running(manifest):
            return ("pending" if rec is None else rec["status"]), None
        return "interrupted", None
    return ("pending" if rec is None else rec["status"]), (rec or {}).get("error_class")


def _driver_running(manifest: Manifest) -> bool:
    """Whether a local driver (other than this process) holds the sweep's lock, i.e. supervises it."""
    import fcntl

    if getattr(manifest, "holds_lock", False):
        return False  # this process is the driver: cells still `pending` now belong to no one
    path = manifest.layout.driver_lock
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def cell_text(v: Any) -> str:
    """How a table shows a value: '-' for missing, 4 decimals for fractions."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def text_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], fmt=cell_text) -> list[str]:
    """Left-aligned columns (key, heading) of `rows`, one line each, the heading first."""
    table = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]


def count_line(counts: Counter) -> str:
    """'2 completed, 1 failed': the counts by name, in name order."""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("cell_id", "cell"),
        ("status", "status"),
        ("error_class", "error"),
        ("progress", "epochs"),
        ("best_minival_top1", "best minival"),
        ("val_top1", "val top1"),
        ("attempts", "attempts"),
        ("job_id", "job"),
    ]
    lines = text_table(rows, cols)
    lines.append("")
    lines.append(f"{len(rows)} cells: " + count_line(Counter(r["status"] for r in rows)))
    for r in rows:
        if r.get("config_changed"):
            lines.append(f"{r['cell_id']}: config refreshed: {', '.join(r['config_changed'])}")
    return "\n".join(lines)
