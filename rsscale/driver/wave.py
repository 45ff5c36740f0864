"""One wave of a sweep: launch cells into the sweep directory, wait for them, collect their states.

`run_wave` is the public step that `rsscale.driver.run.run_sweep` takes once (and that a driver
launching waves until a question is resolved takes repeatedly). What differs between backends is
asked of the backend: whether it owns its cells (they run inside `launch`, stop on the driver's
signals) or a scheduler holds them (the driver polls their states and may detach).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsscale.driver.settings import DriverSettings, SweepError
from rsscale.launch.backends import Backend, LaunchHooks
from rsscale.launch.cell_states import cell_rows, storage_error
from rsscale.launch.live import SweepView, poll_every
from rsscale.launch.manifest import Manifest
from rsscale.launch.resources import ResourceClass
from rsscale.launch.supervision import DriverStop
from rsscale.launch.way_out import continue_command
from rsscale.states import TERMINAL


@dataclass
class WaveResult:
    """How a wave ended: every cell's row (its state), or the stop signal that ended it early."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    signum: int | None = None  # the driver was stopped by this signal (its cells checkpointed)
    submitted: int = 0


def sweep_view(
    settings: DriverSettings, where: Manifest | Path, announce_failures: bool = False
) -> SweepView:
    """The live view the settings ask for (sweep.progress, sweep.progress_every_s)."""
    grid = where.data["grid"] if isinstance(where, Manifest) else None
    return SweepView(
        where.layout.root if isinstance(where, Manifest) else where,
        mode=settings.progress,
        every_s=settings.progress_every_s,
        title=f"grid {grid}" if grid else "",
        announce_failures=announce_failures,
    )


def run_wave(
    backend: Backend,
    manifest: Manifest,
    items: Sequence[tuple[str, ResourceClass]],
    settings: DriverSettings,
    group: str | None,
    waiting: Sequence[str] = (),
    wait: bool = True,
) -> WaveResult:
    """Launch `items` (cell_id, resource class) into the manifest's sweep directory, wait for them and
    for `waiting` (cells still queued from an earlier launch) unless `wait` is False, and collect
    every cell's state into the manifest. Cells' configs must be on disk (plan.refresh_configs)."""
    if backend.owns_cells:
        signum = launch_owned(backend, manifest, items, settings, group)
        return WaveResult(collect(manifest), signum, len(items))
    ids = submit(backend, manifest, items, group)
    if wait and (items or waiting):
        wait_for(backend, manifest, [cid for cid, _ in items] + list(waiting), settings)
    return WaveResult(collect(manifest) if wait else [], None, len(ids))


def submit(
    backend: Backend, manifest: Manifest, items: Sequence[tuple[str, ResourceClass]], group: str | None
) -> dict[str, str]:
    """Queue the cells with a backend whose scheduler holds them; every id lands in the manifest,
    also when a later submission fails (SweepError says how many were queued)."""
    keys = {cid: rc.key for cid, rc in items}
    ids: dict[str, str] = {}

    def on_submit(cid: str, job_id: str) -> None:
        ids[cid] = job_id
        manifest.add_submission(cid, job_id, backend.name, keys[cid])

    try:
        backend.launch(manifest.layout.root, list(items), group, LaunchHooks(on_submit=on_submit))
    except Exception as e:
        done = f"{len(ids)} of {len(items)} cells were submitted (recorded in the manifest); " if ids else ""
        raise SweepError(f"submission failed: {done}{type(e).__name__}: {str(e).strip()}") from None
    finally:
        manifest.save()  # the ids of every queued array, also when a later one failed
    return ids


def launch_owned(
    backend: Backend,
    manifest: Manifest,
    items: Sequence[tuple[str, ResourceClass]],
    settings: DriverSettings,
    group: str | None,
) -> int | None:
    """Run the cells of a backend that owns them; return the stop signal's number if one stopped the
    driver (its cells checkpoint and stop), else None."""
    stop = {"flag": False}
    done = {"n": 0}

    def on_submit(cid: str, job_id: str) -> None:
        manifest.add_submission(cid, job_id, backend.name, manifest.cells[cid]["resource_class"])
        manifest.save()

    def on_done(cid: str, err: BaseException | None) -> None:
        done["n"] += 1
        stopped_by = driver.name if driver.requested else ("fail_fast" if stop["flag"] else None)
        if stopped_by:  # the driver asked it to stop: a preemption, whatever state it ended in
            manifest.cells[cid]["submissions"][-1]["stopped_by"] = stopped_by
            manifest.save()
        print(f"[{done['n']}/{len(items)}] {done_line(manifest, cid, err)}", flush=True)
        if err is not None and settings.fail_fast and not driver.requested:
            stop["flag"] = True

    with DriverStop() as driver, sweep_view(settings, manifest) as view:
        tick = poll_every(view, lambda: cell_rows(manifest, [cid for cid, _ in items]))
        hooks = LaunchHooks(
            on_submit=on_submit,
            on_done=on_done,
            should_stop=lambda: stop["flag"] or driver.requested,
            on_poll=tick,
        )
        backend.launch(manifest.layout.root, list(items), group, hooks)
    return driver.signum


def wait_for(backend: Backend, manifest: Manifest, cell_ids: Sequence[str], settings: DriverSettings) -> None:
    """Poll the cells' states (one batched query per poll) until every one is final; with fail_fast,
    cancel the rest at the first failure."""
    with sweep_view(settings, manifest, announce_failures=True) as view:
        while True:
            rows = cell_rows(manifest, cell_ids)
            view.update(rows)
            counts = Counter(r["status"] for r in rows)
            if settings.fail_fast and counts.get("failed"):
                backend.cancel([r["job_id"] for r in rows if r["status"] not in TERMINAL and r["job_id"]])
                view.print("rsscale: fail_fast: a cell failed; cancelled the rest")
                return
            if all(r["status"] in TERMINAL for r in rows):
                return
            time.sleep(settings.poll_s)


def collect(manifest: Manifest) -> list[dict[str, Any]]:
    """Every cell's row; the manifest keeps each cell's state (saved)."""
    rows = cell_rows(manifest)
    for r in rows:
        manifest.cells[r["cell_id"]].update(status=r["status"], error_class=r["error_class"])
    manifest.save()
    return rows


def done_line(manifest: Manifest, cid: str, err: BaseException | None) -> str:
    """`cell: status val top1 x (error_class: the exception's message)`: the error, not a log path."""
    row = cell_rows(manifest, [cid])[0]
    rec = manifest.record(cid) or {}
    msg = f"{cid}: {row['status']}"
    if row["val_top1"] is not None:
        msg += f" val top1 {row['val_top1']:.4f}"
    if row["status"] == "preempted":  # the reason it stopped, never submitit's log path
        stopped_by = (manifest.cells[cid]["submissions"] or [{}])[-1].get("stopped_by")
        why = f"stopped by {stopped_by}" if stopped_by else (rec.get("error") or "stopped")
        return f"{msg} (preempted: {why}; the next run resumes it)"
    if row["error_class"] == "storage":  # the path and errno, and the way out
        text = storage_error(manifest, cid) or rec.get("error") or "the storage failed"
        return (
            f"{msg} (storage: {text.strip()[:300]}); fix the storage (space, permissions), then: "
            f"{continue_command('rsscale.sweep')}"
        )
    if row["status"] != "completed":
        text = rec.get("error")
        if not text and row["error_class"] == "node_failure":
            text = "the process ended without recording an error (killed?)"
        if not text and err is not None:
            text = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        if row["error_class"] or text:
            msg += f" ({row['error_class'] or row['status']}: {(text or '').strip()[:300]})"
    return msg
