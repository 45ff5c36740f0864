"""Minimal IDX reader/writer (the MNIST file format), gzipped or plain.

Written by hand so that loading Fashion-MNIST needs neither torchvision's dataset classes nor
the network: the Debian package ships the raw ``*-ubyte.gz`` files and this is all it takes.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/).
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE = {dt.newbyteorder("="): code for code, dt in _CODE_TO_DTYPE.items()}


def _read_bytes(path: Path) -> bytes:
    """Read the file, gunzipping when it starts with the gzip magic (not trusting the suffix)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Return the array stored in an IDX file (native byte order, read-only is not enforced)."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4]!r})")
    code, ndim = raw[2], raw[3]
    if code not in _CODE_TO_DTYPE:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX size mismatch: {len(raw)} bytes, header says {expected} for {shape}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when ``compress`` or the name ends in .gz); used by tests."""
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=")
    if key not in _DTYPE_TO_CODE:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}")
    code = _DTYPE_TO_CODE[key]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + arr.astype(_CODE_TO_DTYPE[code], copy=False).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, compresslevel=6)
    with open(path, "wb") as fh:
        fh.write(payload)
