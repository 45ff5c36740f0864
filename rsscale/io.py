"""Atomic file writes: every file that matters is written to a temp file, fsynced, then renamed.

Readers therefore see either the old or the new content, never half a file, even if the writer
is SIGKILLed or the node dies mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """fsync=False skips the two fsyncs (file, directory), for many small files that the caller
    makes durable together afterwards (one `os.sync()`): still atomic, not yet crash-durable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not fsync:
        return
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = True) -> None:
    text = json.dumps(obj, indent=1, sort_keys=False, default=_json_default) + "\n"
    atomic_write_text(path, text, fsync=fsync)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def read_jsonl(path: str | os.PathLike) -> tuple[list[dict], int]:
    """The lines of a JSON-lines file that are JSON objects, and how many lines are not (a torn
    write, binary garbage): a log is read line by line, never decoded as one text."""
    good, bad = [], 0
    for raw in Path(path).read_bytes().splitlines():
        if not raw.strip():
            continue
        obj = read_jsonl_line(raw)
        if obj is None:
            bad += 1
        else:
            good.append(obj)
    return good, bad


def read_jsonl_line(raw: bytes) -> dict | None:
    """One JSON-lines line as an object, or None (garbage, binary, torn)."""
    try:
        obj = json.loads(raw.decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return None
    return obj if isinstance(obj, dict) else None


def set_aside(path: str | os.PathLike) -> Path:
    """Move a garbage file out of the way as `<name>.garbage-<n>` (kept for a post-mortem)."""
    path = Path(path)
    n = 1
    while (target := path.with_name(f"{path.name}.garbage-{n}")).exists():
        n += 1
    os.replace(path, target)
    return target


# A failing storage, not a failing program: no permission, a read-only or full file system, a quota.
STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
# the same in a traceback's last line (a job's log): `PermissionError: [Errno 13] ... 'path'`
STORAGE_LINE = re.compile(
    r"^(?:\w+\.)*(?:PermissionError|OSError|FileExistsError|NotADirectoryError): "
    rf"\[Errno (?:{'|'.join(str(n) for n in sorted(STORAGE_ERRNOS))})\] .*$",
    re.MULTILINE,
)


def is_storage_error(e: BaseException) -> bool:
    """An OSError of the storage (permissions, read-only, full, quota): error class `storage`."""
    return isinstance(e, OSError) and e.errno in STORAGE_ERRNOS


def storage_error_in(text: str) -> str | None:
    """The last storage error line in a log's text, or None."""
    found = STORAGE_LINE.findall(text)
    return found[-1].strip() if found else None


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
