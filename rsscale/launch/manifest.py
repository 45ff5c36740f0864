"""The sweep manifest: the durable state of a sweep (cell -> hash, config, job ids, attempts, status).

One JSON file, written atomically by the driver. Cells are only ever added, never renumbered or
removed; a completed cell's record is never touched. Run records in each cell directory hold the
results; `status` merges both with one batched sacct call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rsscale.io import atomic_write_json, atomic_write_text, read_json, read_jsonl, read_jsonl_line, set_aside
from rsscale.layout import CELLS_DIR, MANIFEST_NAME, SweepLayout
from rsscale.train.record_file import load_record, now

SCHEMA_VERSION = 1


class ManifestError(ValueError):
    """An unreadable manifest.json; the message names the file and how to recover."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(
            f"{path} is unreadable ({reason}). Move it aside (mv {path} {path}.bad) and re-run the same "
            "sweep command: it rebuilds the manifest, and cells with a completed record are not "
            "trained again"
        )


class Manifest:
    def __init__(self, sweep_dir: str | os.PathLike, data: dict[str, Any] | None = None):
        self.sweep_dir = Path(sweep_dir)
        self.layout = SweepLayout(sweep_dir)
        self.data = data or {
            "schema_version": SCHEMA_VERSION,
            "created": now(),
            "updated": now(),
            "grid": None,
            "commands": [],
            "cells": {},
        }

    # -- persistence ----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.layout.manifest

    @classmethod
    def load(cls, sweep_dir: str | os.PathLike) -> Manifest:
        path = SweepLayout(sweep_dir).manifest
        if not path.exists():
            raise FileNotFoundError(f"{sweep_dir} is not a sweep directory (no {MANIFEST_NAME})")
        try:
            data = read_json(path)
            if not isinstance(data, dict) or not isinstance(data.get("cells"), dict):
                raise ValueError("not a manifest (no 'cells' object)")
        except (OSError, ValueError) as e:
            raise ManifestError(path, str(e)) from None
        return cls(sweep_dir, data)

    @classmethod
    def load_or_new(cls, sweep_dir: str | os.PathLike) -> Manifest:
        """The driver's manifest: a garbage one is set aside (named) and rebuilt from the cells'
        own files (records, attempts logs: `rebuilt` tells the planner to take submissions from them);
        so is a lost one."""
        try:
            return cls.load(sweep_dir)
        except FileNotFoundError:  # new, or lost: then its cells' files are the evidence
            m = cls(sweep_dir)
            m.rebuilt = m.layout.cells.is_dir()
            return m
        except ManifestError as e:
            aside = set_aside(e.path)
            print(
                f"rsscale: warning: {e.path} is unreadable ({e.reason}); set aside as {aside.name} and "
                "rebuilt from the cells' records and attempts logs",
                file=sys.stderr,
            )
            m = cls(sweep_dir)
            m.rebuilt = True
            return m

    @classmethod
    def load_for_status(cls, sweep_dir: str | os.PathLike) -> Manifest:
        """Status readers change no file: a garbage manifest is named and the cells are read from
        their directories (each cell's record; no submissions, so no scheduler state)."""
        try:
            return cls.load(sweep_dir)
        except ManifestError as e:
            print(
                f"rsscale: warning: {e.path} is unreadable ({e.reason}); cells read from their records "
                "(the next sweep command sets it aside and rebuilds it)",
                file=sys.stderr,
            )
            m = cls(sweep_dir)
            cells = m.layout.cells
            for d in sorted(cells.iterdir()) if cells.is_dir() else []:
                if d.is_dir():
                    m.add_cell(d.name, "", {}, None, None)
            return m

    def submissions_from_attempts(
        self, cell_id: str, launcher: str, job_id: Callable[[str], str] = str
    ) -> list[dict[str, Any]]:
        """A rebuilt manifest's submissions of a cell: one per job id in its attempts log, so that a
        job still queued or running is waited for instead of submitted twice. `job_id`: the manifest's
        id of an attempts-log id (the backend's `manifest_job_id`)."""
        subs, seen = [], set()
        for line in _attempt_lines(self.layout.cell(cell_id).attempts):
            job = str(line.get("job_id") or "")
            if job and job not in seen:
                seen.add(job)
                subs.append(
                    {
                        "job_id": job_id(job),
                        "launcher": launcher,
                        "resource_class": None,
                        "time": line.get("time"),
                    }
                )
        return subs

    def save(self) -> None:
        self.data["updated"] = now()
        atomic_write_json(self.path, self.data)

    @contextlib.contextmanager
    def driver_lock(self) -> Iterator[None]:
        """One driver per sweep directory at a time (status readers need no lock)."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.driver_lock, "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"another rsscale.sweep is driving {self.sweep_dir}; wait for it or use "
                    f"`python -m rsscale.status {self.sweep_dir}`"
                ) from None
            self.holds_lock = True
            try:
                yield
            finally:
                self.holds_lock = False

    # -- cells ----------------------------------------------------------------------------------
    @property
    def cells(self) -> dict[str, dict[str, Any]]:
        return self.data["cells"]

    def cell_dir(self, cell_id: str) -> Path:
        return self.layout.cell(cell_id).dir

    def add_cell(self, cell_id: str, h: str, axes: dict, case: str | None, resource_class: str) -> dict:
        entry = self.cells.get(cell_id)
        if entry is None:
            entry = self.cells[cell_id] = {
                "hash": h,
                "axes": axes,
                "case": case,
                "cell_dir": f"{CELLS_DIR}/{cell_id}",
                "resource_class": resource_class,
                "submissions": [],
                "status": "new",
                "error_class": None,
            }
        elif entry["hash"] != h and entry["hash"]:
            raise RuntimeError(f"manifest cell {cell_id} has hash {entry['hash']}, the grid gives {h}")
        return entry

    def add_submission(self, cell_id: str, job_id: str, launcher: str, resource_class: str) -> None:
        self.cells[cell_id]["submissions"].append(
            {"job_id": str(job_id), "launcher": launcher, "resource_class": resource_class, "time": now()}
        )

    def record(self, cell_id: str) -> dict | None:
        try:
            return load_record(self.cell_dir(cell_id))
        except (OSError, ValueError) as e:  # a malformed record is reported, not fatal
            print(f"rsscale: warning: unreadable record for {cell_id}: {e}", file=sys.stderr)
            return None

    def attempts(self, cell_id: str) -> int:
        """Starts of the cell's runner (each line of attempts.jsonl), across requeues and re-runs."""
        return count_attempts(self.layout.cell(cell_id).attempts)

    def last_attempt(self, cell_id: str) -> dict | None:
        return last_attempt(self.layout.cell(cell_id).attempts)

    def heal_attempts(self, cell_id: str) -> None:
        """The driver's repair of a garbage attempts.jsonl: the file is set aside (named on stderr)
        and its readable lines written back, so the cell's runner appends to a clean log."""
        path = self.layout.cell(cell_id).attempts
        if not path.exists():
            return
        good, bad = read_jsonl(path)
        if not bad:
            return
        aside = set_aside(path)
        atomic_write_text(path, "".join(json.dumps(line) + "\n" for line in good))
        print(
            f"rsscale: warning: {path}: {bad} unreadable line(s); set aside as {aside.name}, "
            f"{len(good)} attempt(s) kept",
            file=sys.stderr,
        )


_WARNED: set[Path] = set()


def _attempt_lines(path: Path, *, torn_tail: bool = False) -> list[dict]:
    """The readable lines; garbage is skipped and named once (status readers change no file). With
    `torn_tail`, an unreadable last line counts too (a start that died while writing its line)."""
    if not path.exists():
        return []
    try:
        good, bad = read_jsonl(path)
    except OSError as e:  # unreadable: counted as no attempts, and said
        good, bad = [], f"cannot read it ({e})"
    if bad and path not in _WARNED:
        _WARNED.add(path)
        print(f"rsscale: warning: {path}: {bad} unreadable line(s) skipped", file=sys.stderr)
    if torn_tail and bad:
        tail = path.read_bytes().rstrip().rsplit(b"\n", 1)[-1]
        if read_jsonl_line(tail) is None:
            return [*good, {}]
    return good


def count_attempts(path: Path) -> int:
    """Starts of the cell in an attempts.jsonl: its readable lines and a torn last one (0: no file)."""
    return len(_attempt_lines(path, torn_tail=True))


def last_attempt(path: Path) -> dict | None:
    """The newest readable line of an attempts.jsonl, or None."""
    lines = _attempt_lines(path)
    return lines[-1] if lines else None
