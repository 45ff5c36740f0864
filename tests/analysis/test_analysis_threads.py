"""The batched solver's chunks on threads (rsscale/analysis/threads.py): the answer does not
depend on the number of threads, and the setting is checked."""

import numpy as np
import pytest

from rsscale.analysis.fit import CurveData, fit_curves
from rsscale.analysis.threads import map_chunks, n_chunks, n_threads


def _curves():
    rng = np.random.default_rng(0)
    C = np.geomspace(1e8, 1e10, 10)
    return [
        CurveData(i, C, (0.05 + 0.3 * (C / 1e8) ** -(0.3 + 0.05 * i)) * np.exp(rng.normal(0, 0.02, C.size)))
        for i in range(6)
    ]


def test_fits_do_not_depend_on_the_number_of_threads(monkeypatch):
    out = {}
    for t in ("1", "3"):
        monkeypatch.setenv("RSSCALE_THREADS", t)
        out[t] = fit_curves(_curves(), law="saturating", n_boot=200, seed=1)
    for a, b in zip(out["1"], out["3"]):
        np.testing.assert_array_equal(a.theta, b.theta)
        np.testing.assert_array_equal(a.boot_theta, b.boot_theta)
        assert a.ci == b.ci


def test_thread_setting_and_chunking(monkeypatch):
    monkeypatch.setenv("RSSCALE_THREADS", "2")
    assert n_threads() == 2
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("RSSCALE_THREADS", bad)
        with pytest.raises(ValueError, match="RSSCALE_THREADS"):
            n_threads()
    monkeypatch.delenv("RSSCALE_THREADS")
    assert 1 <= n_threads() <= 8
    assert n_chunks(100, 50, 1) == 2 and n_chunks(100, 50, 3) == 3 and n_chunks(101, 50, 2) == 4
    assert n_chunks(2, 50, 4) == 2  # never more chunks than rows
    assert map_chunks(lambda i: i * i, range(5), 2) == [0, 1, 4, 9, 16]
