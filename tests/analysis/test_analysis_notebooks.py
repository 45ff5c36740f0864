"""The notebooks in analysis/ run top to bottom against a real local sweep directory.

The sweep is a real 4-cell depth x width sweep on synthetic data, run by `rsscale.sweep` in a
subprocess; set RSSCALE_NOTEBOOK_SOURCE to another sweep directory (or
wandb:ENTITY/PROJECT[/GROUP]) to run the notebooks against that instead.
"""

import os
from pathlib import Path

import nbformat
import pytest

from tests.launch.sweep_helpers import records, sweep

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "analysis").glob("*.ipynb"))


def test_notebooks_exist_are_stripped_and_parametrised():
    assert {p.name for p in NOTEBOOKS} >= {"pareto.ipynb", "scaling_curves.ipynb"}
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "source =" in params[0].source, p.name
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{p.name}: outputs not stripped"


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("nb") / "sweep"
    sweep(d, grid="nb")
    assert len(records(d)) == 4 and all(r["status"] == "completed" for r in records(d).values())
    return d


def _inject(nb, **params):
    """papermill-style: a cell right after the parameters cell that overrides them."""
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    src = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, cell)
    return nb


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, real_sweep):
    from nbclient import NotebookClient

    source = os.environ.get("RSSCALE_NOTEBOOK_SOURCE")
    if not source:
        source = str(real_sweep)
    nb = _inject(nbformat.read(path, as_version=4), source=source, n_boot=200, out_dir=str(tmp_path / "figs"))
    NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert images, "no figure displayed"
    assert list((tmp_path / "figs").glob("*.svg"))
