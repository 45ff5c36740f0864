"""Fixtures for the analysis tests: contract-exact sweep directories generated from known laws."""

from __future__ import annotations

import pytest

from rsscale.analysis import synthetic as S
from rsscale.layout import CellLayout, SweepLayout


def paper_table(seed: int = 0, noise: float = 0.02, **kw):
    """Width wins at 10 epochs, depth at 350 (rsscale.analysis.synthetic.paper_like_laws)."""
    args = dict(
        depths=(26, 50, 101, 200, 300),
        widths=(0.25, 0.5, 1.0, 1.5, 2.0),
        resolutions=(128, 224),
        epochs=(10, 350),
        laws=S.paper_like_laws(),
        noise=noise,
        seed=seed,
        dataset="fashion_mnist",
    )
    args.update(kw)
    return S.make_table(**args)


@pytest.fixture(name="paper_table")
def paper_table_fixture():
    return paper_table


@pytest.fixture
def sweep_dir(tmp_path):
    """A small sweep: 2 epoch budgets, 5 depths x 5 widths x 2 resolutions, one failed cell,
    one diverged cell, one malformed record, two cells still pending (manifest only)."""
    t = paper_table()
    path = S.write_sweep(tmp_path / "sweep", t, statuses={3: "failed", 8: "diverged"}, pending=2)
    cells = sorted(SweepLayout(path).cells.iterdir())
    CellLayout(cells[5]).record.write_text('{"schema_version": 1, "status": "compl')  # torn write
    return path
