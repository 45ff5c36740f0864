"""The hand-written IDX reader: round trips, gzip detection, corrupt files."""

import gzip

import numpy as np
import pytest

from rsscale.data import read_idx, write_idx


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_roundtrip_uint8_images(tmp_path, name):
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    write_idx(tmp_path / name, arr)
    out = read_idx(tmp_path / name)
    assert out.dtype == np.uint8 and out.shape == (7, 5, 4)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64, np.int8])
def test_roundtrip_other_dtypes_big_endian(tmp_path, dtype):
    arr = (np.arange(-6, 6) * 3).astype(dtype)
    write_idx(tmp_path / "a.idx", arr)
    out = read_idx(tmp_path / "a.idx")
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_header_is_the_mnist_layout(tmp_path):
    """Bytes as in the MNIST spec: 0,0,type 0x08,ndim then big-endian dims."""
    write_idx(tmp_path / "l.gz", np.array([3, 1, 4], dtype=np.uint8))
    raw = gzip.decompress((tmp_path / "l.gz").read_bytes())
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])


def test_gzip_detected_by_content_not_suffix(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain-name", arr, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), arr)


def test_corrupt_files_raise(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t", np.zeros((4, 3), np.uint8))
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-1])
    with pytest.raises(ValueError, match="size mismatch"):
        read_idx(tmp_path / "t")
