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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rsscale.io import atomic_write_json, atomic_write_text, read_json, read_jsonl, set_aside
from rsscale.layout import CELLS_DIR, MANIFEST_NAME, SweepLayout
from rsscale.train.record import load_record, now

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
        try:
            return cls.load(sweep_dir)
        except FileNotFoundError:
            return cls(sweep_dir)

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
        elif entry["hash"] != h:
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


def _attempt_lines(path: Path) -> list[dict]:
    """The readable lines; garbage is skipped and named once (status readers change no file)."""
    if not path.exists():
        return []
    try:
        good, bad = read_jsonl(path)
    except OSError as e:  # unreadable: counted as no attempts, and said
        good, bad = [], f"cannot read it ({e})"
    if bad and path not in _WARNED:
        _WARNED.add(path)
        print(f"rsscale: warning: {path}: {bad} unreadable line(s) skipped", file=sys.stderr)
    return good


def count_attempts(path: Path) -> int:
    """Readable lines of an attempts.jsonl (one per start of the cell); 0 without the file."""
    return len(_attempt_lines(path))


def last_attempt(path: Path) -> dict | None:
    """The newest readable line of an attempts.jsonl, or None."""
    lines = _attempt_lines(path)
    return lines[-1] if lines else None
