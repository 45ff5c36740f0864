"""The notebooks in analysis/ run as shipped, the way a user runs them.

`jupyter nbconvert --execute` with the shipped parameters, started outside the repository, on a
temporary copy of the repository layout (pyproject.toml, analysis/*.ipynb) whose runs/depth_width is
a real 4-cell depth x width sweep on synthetic data, run by `rsscale.sweep` in a subprocess. The
kernel starts in analysis/; the notebooks find runs/ at the copy's root. Set
RSSCALE_NOTEBOOK_SOURCE to another sweep directory (or wandb:ENTITY/PROJECT[/GROUP]) to also run
them against that, papermill-style (a cell after the parameters cell overrides `source`).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from rsscale.analysis.columns import LoadError
from rsscale.analysis.locate import find_source, repo_root
from tests.launch.sweep_helpers import records, sweep

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "analysis").glob("*.ipynb"))


def test_notebooks_exist_are_stripped_and_parametrised():
    assert {p.name for p in NOTEBOOKS} >= {"pareto.ipynb", "scaling_curves.ipynb"}
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and 'source = "runs/depth_width"' in params[0].source, p.name
        assert "wandb_refresh = False" in params[0].source, p.name
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{p.name}: outputs not stripped"


def test_relative_source_is_found_from_the_repository_root(tmp_path):
    repo = tmp_path / "repo"
    (repo / "analysis").mkdir(parents=True)
    (repo / "runs" / "depth_width").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert repo_root(repo / "analysis") == repo
    want = str(repo / "runs" / "depth_width")
    assert find_source("runs/depth_width", start=repo / "analysis") == want  # Jupyter's working dir
    assert find_source("runs/depth_width", start=repo) == want
    assert find_source("wandb:e/p/g", start=repo) == "wandb:e/p/g"
    assert find_source(want, start=tmp_path) == want
    with pytest.raises(LoadError, match="make demo"):
        find_source("runs/no_such_sweep", start=repo / "analysis")


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """pyproject.toml and analysis/*.ipynb copied, runs/depth_width a real sweep."""
    repo = tmp_path_factory.mktemp("nb") / "repo"
    (repo / "analysis").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", repo)
    for p in NOTEBOOKS:
        shutil.copy(p, repo / "analysis")
    d = repo / "runs" / "depth_width"
    sweep(d, grid="nb")
    assert len(records(d)) == 4 and all(r["status"] == "completed" for r in records(d).values())
    return repo


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_as_shipped_with_nbconvert(name, repo_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # the user's shell is not in the repository
    elsewhere.mkdir()
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           str(repo_copy / "analysis" / name), "--output-dir", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-4000:]
    nb = nbformat.read(tmp_path / "out" / name, as_version=4)
    outs = _outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert f"source: {repo_copy / 'runs' / 'depth_width'}" in text and "4 cells, 4 usable" in text
    assert [o for o in outs if "image/png" in o.get("data", {})], "no figure displayed"


def _inject(nb, **params):
    """papermill-style: a cell right after the parameters cell that overrides them."""
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, cell)
    return nb


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not os.environ.get("RSSCALE_NOTEBOOK_SOURCE"), reason="RSSCALE_NOTEBOOK_SOURCE not set")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_another_source(path, tmp_path):
    from nbclient import NotebookClient

    source = os.environ["RSSCALE_NOTEBOOK_SOURCE"]
    nb = _inject(nbformat.read(path, as_version=4), source=source, n_boot=200, out_dir=str(tmp_path / "figs"))
    NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert list((tmp_path / "figs").glob("*.svg"))
