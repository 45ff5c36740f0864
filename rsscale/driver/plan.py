"""Which cells of a sweep to launch: new ones, unfinished ones, and failures the retry policy allows.

Every cell's resources are checked by the backend before anything is submitted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rsscale.driver.settings import SweepError
from rsscale.io import read_json
from rsscale.launch.backends import Backend, BackendError
from rsscale.launch.cell_files import changed_fields, sync_config
from rsscale.launch.cell_states import cell_rows
from rsscale.launch.grid import Cell
from rsscale.launch.manifest import Manifest
from rsscale.launch.resources import ResourceClass, ResourceError
from rsscale.launch.way_out import continue_command
from rsscale.states import RETRIED, WAITING


@dataclass
class Plan:
    """The cells to launch (with their resource classes) and what was skipped, by reason."""

    todo: list[tuple[Cell, ResourceClass]] = field(default_factory=list)
    new: int = 0
    resume: int = 0
    retry: int = 0
    skip_completed: int = 0
    running: int = 0  # queued or running from an earlier launch
    waiting: list[str] = field(default_factory=list)  # their cell ids
    out_of_retries: list[tuple[Cell, str, int, int]] = field(
        default_factory=list
    )  # (cell, class, used, allowed)

    @property
    def exhausted(self) -> int:
        return len(self.out_of_retries)

    def summary(self) -> str:
        return (
            f"  to launch: {self.new} new, {self.resume} to resume, {self.retry} to retry; "
            f"skipped: {self.skip_completed} completed, {self.running} still queued/running, "
            f"{self.exhausted} out of retries"
        )


def resource_classes(backend: Backend, cells: Sequence[Cell]) -> dict[str, ResourceClass]:
    """Every cell's resources on the backend, before anything is submitted; SweepError names the cell."""
    try:
        backend.check_cells([c.config for c in cells], [c.cell_id for c in cells])
    except BackendError as e:
        raise SweepError(str(e)) from None
    classes = {}
    for c in cells:
        try:
            classes[c.cell_id] = backend.resource_class(c.config)
        except ResourceError as e:
            raise SweepError(f"cell {c.cell_id}: {e}") from None
    return classes


def plan(backend: Backend, manifest: Manifest, cells: Sequence[Cell], retry: Mapping[str, int]) -> Plan:
    """Which cells to launch (the manifest learns of every cell); `backend` already `with_limits()`."""
    classes = resource_classes(backend, cells)
    for c in cells:  # garbage in a cell's attempts log is set aside before anything reads it
        manifest.heal_attempts(c.cell_id)
    known = [
        c.cell_id for c in cells if c.cell_id in manifest.cells and manifest.cells[c.cell_id]["submissions"]
    ]
    rows = {r["cell_id"]: r for r in cell_rows(manifest, known)} if known else {}
    out = Plan()
    for c in cells:
        entry = manifest.add_cell(c.cell_id, c.hash, c.axes, c.case, classes[c.cell_id].key)
        row = rows.get(c.cell_id)
        if getattr(manifest, "rebuilt", False) and not entry["submissions"]:
            entry["submissions"] = manifest.submissions_from_attempts(
                c.cell_id, backend.name, backend.manifest_job_id
            )
            row = cell_rows(manifest, [c.cell_id])[0] if entry["submissions"] else None
        if row is None:
            if completed_on_disk(manifest, c):  # e.g. a manifest rebuilt after it was lost
                out.skip_completed += 1
                continue
            out.todo.append((c, classes[c.cell_id]))
            out.new += 1
            continue
        status, ecls = row["status"], row["error_class"]
        last = entry["submissions"][-1]
        if status in RETRIED and "outcome" not in last:
            last["outcome"] = ecls or status
        if status == "completed":
            out.skip_completed += 1
        elif status in WAITING:
            out.running += 1
            out.waiting.append(c.cell_id)
        elif status in RETRIED:
            cls = ecls or ("diverged" if status == "diverged" else "code_error")
            used = sum(1 for s in entry["submissions"] if s.get("outcome") == cls)
            if used <= int(retry.get(cls, 0)):
                out.todo.append((c, classes[c.cell_id]))
                if status == "failed":
                    out.retry += 1
                else:
                    out.resume += 1
            else:
                out.out_of_retries.append((c, cls, used, int(retry.get(cls, 0))))
        else:
            out.todo.append((c, classes[c.cell_id]))
            out.resume += 1
    return out


def completed_on_disk(manifest: Manifest, c: Cell) -> bool:
    """The cell's record says completed, for this very cell (hash)."""
    if not manifest.layout.cell(c.cell_id).record.exists():
        return False
    rec = manifest.record(c.cell_id) or {}
    return rec.get("status") == "completed" and rec.get("cell_hash") == c.hash


def out_of_retries_lines(manifest: Manifest, exhausted: Sequence[tuple[Cell, str, int, int]]) -> list[str]:
    """One line per cell out of retries (its class, the fields outside the hash changed since its
    last launch), then the command that retries them."""
    lines: list[str] = []
    raise_to: dict[str, int] = {}
    for c, cls, used, allowed in exhausted:
        try:
            old = read_json(manifest.layout.cell(c.cell_id).config)
            changed = changed_fields(old, c.config) if isinstance(old, dict) else []
        except (OSError, ValueError):
            changed = []
        since = f"; changed since its last run: {', '.join(changed)}" if changed else ""
        lines.append(
            f"  {c.cell_id}: out of retries ({cls}: failed {used} time(s), "
            f"sweep.retry.{cls}={allowed}){since}"
        )
        raise_to[f"sweep.retry.{cls}"] = max(used, raise_to.get(f"sweep.retry.{cls}", 0))
    lines.append(f"rsscale: to retry them: {continue_command('rsscale.sweep', raise_to)}")
    return lines


def refresh_configs(manifest: Manifest, cells: Sequence[Cell]) -> int:
    """Every launched cell runs the sweep's current config; say which unhashed fields changed."""
    written = 0
    for c in cells:
        changed = sync_config(manifest.cell_dir(c.cell_id), c.config)
        if changed is None or changed:
            written += 1
        if changed:
            manifest.cells[c.cell_id]["config_changed"] = {"fields": changed, "time": time.strftime("%F %T")}
            print(f"  {c.cell_id}: config refreshed ({', '.join(changed)})", flush=True)
    return written
