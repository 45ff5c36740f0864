"""The study's storage: Optuna's JournalFileBackend at STUDY_DIR/journal.log (or an RDB URL).

Two cluster failure modes are handled here. The default lock is `flock` on a side file: the
kernel drops it when its holder dies, so a SIGKILLed worker can never hang the next one (Optuna's
symlink/open locks wait out a grace period instead; `open` stays available for file systems
without flock). A worker killed mid-append leaves a torn last line; every append first cuts
the file back to its last newline under the lock, so the journal always stays loadable.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import BaseJournalFileLock

from rsscale.layout import StudyLayout

LOCKS = ("flock", "open")


class FlockLock(BaseJournalFileLock):
    """An exclusive flock on PATH.flock, released by the kernel when the holder dies."""

    def __init__(self, filepath: str):
        self._path = filepath + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class RepairingJournalBackend(JournalFileBackend):
    """A JournalFileBackend that drops a torn last line (a writer killed mid-write) before appending."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        lock = self._lock
        lock.acquire()
        try:
            repair_torn_tail(self._file_path)
            _append(self._file_path, logs)
        finally:
            lock.release()


def _append(path: str, logs: list[dict[str, Any]]) -> None:
    import json

    data = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
    with open(path, "ab") as f:
        f.write(data.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def repair_torn_tail(path: str | os.PathLike) -> int:
    """Cut a journal back to its last complete line; returns the bytes removed (call under the lock)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos = size
        keep = 0
        while pos > 0:  # scan back for the last newline, in blocks
            n = min(65536, pos)
            pos -= n
            f.seek(pos)
            block = f.read(n)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def open_storage(study_dir: str | os.PathLike, url: str | None = None, lock: str = "flock"):
    """The study's storage: the journal in study_dir (default) or an RDB URL (`tune.storage`)."""
    if url:
        return optuna.storages.RDBStorage(url)
    if lock not in LOCKS:
        raise ValueError(f"tune.journal_lock={lock!r}: allowed {', '.join(LOCKS)}")
    path = str(StudyLayout(study_dir).journal)
    lock_obj = FlockLock(path) if lock == "flock" else JournalFileOpenLock(path, grace_period=30)
    return optuna.storages.JournalStorage(RepairingJournalBackend(path, lock_obj=lock_obj))
