"""`python -m rsscale.sweep -m ...` is one rsscale sweep (hydra_plugins/rsscale_sweeper).

The expansion tests compose in-process with Hydra's own config loader, exactly as the sweeper
does; the end-to-end ones run the command as a real subprocess (local launcher, real SLURM).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

import rsscale.sweep  # noqa: F401 - registers the sweep-dir resolver
from rsscale.config import CONF_DIR, compose
from rsscale.launch.grid import expand
from rsscale.launch.multirun import MultirunError, canonical, expand_multirun
from rsscale.layout import SweepLayout
from tests.launch.sweep_helpers import FAST, REPO, attempts, records, status

TINY = ["data.train_res=16", "recipe.epochs=1"]


def load(mode: RunMode, *overrides: str):
    """The composed config Hydra builds for `python -m rsscale.sweep [-m] overrides`, and its loader."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        args = [*overrides, f"hydra.mode={mode.name}"]  # what `-m` adds on the command line
        return loader.load_configuration("config", args, mode), loader


def multirun(*overrides: str):
    """(grid spec, cells) of `-m overrides`: the sweeper's own expansion."""
    master, loader = load(RunMode.MULTIRUN, *overrides)
    return expand_multirun(master, list(master.hydra.overrides.task), loader)


def sweep_dir_of(mode: RunMode, *overrides: str) -> str:
    cfg, _ = load(mode, *overrides)
    return OmegaConf.select(cfg, "hydra.sweep.dir")


def signature(cells) -> list[tuple]:
    return [(c.cell_id, c.hash, json.dumps(c.config, sort_keys=True)) for c in cells]


def run_m(sweep_dir: Path, *overrides: str, check: bool = True, timeout: float = 600):
    """`python -m rsscale.sweep -m [FAST] hydra.sweep.dir=D overrides` as a real subprocess."""
    args = [sys.executable, "-m", "rsscale.sweep", "-m", *FAST, f"hydra.sweep.dir={sweep_dir}", *overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep -m failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return proc


# ------------------------------------------------------------------------------ expansion (fast)
def test_multirun_cells_and_hashes_equal_a_grid_file_on_the_search_path(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "eq.yaml").write_text(
        "name: eq\naxes:\n  model.depth: [26, 50]\n  recipe.epochs: [1, 2]\n"
    )
    grid_cfg = compose(["+grid=eq", f"hydra.searchpath=[file://{tmp_path}]"])
    _, from_grid = expand(grid_cfg)
    spec, from_m = multirun("model.depth=26,50", "recipe.epochs=1,2")
    assert len(from_m) == 4 and spec["name"] == "default"
    assert signature(from_m) == signature(from_grid)
    assert [c.axes for c in from_m] == [c.axes for c in from_grid]
    # combined with the same grid file: the swept axis joins the grid's axes (2 x 2 x 2)
    _, both = multirun("+grid=eq", f"hydra.searchpath=[file://{tmp_path}]", "model.width=0.25,0.5")
    points = {(c.axes["model.depth"], c.axes["recipe.epochs"], c.axes["model.width"]) for c in both}
    assert len(both) == 8 and points == {(d, e, w) for d in (26, 50) for e in (1, 2) for w in (0.25, 0.5)}


def test_range_choice_and_quoted_values_are_parsed_by_hydra():
    _, commas = multirun("model.depth=26,50", "model.width=0.25,0.5")
    _, ranged = multirun("model.depth=range(26,51,24)", "model.width=choice(0.25,0.5)")
    assert signature(ranged) == signature(commas) and len(commas) == 4
    _, quoted = multirun("model.stem='small','released'")
    assert sorted(c.config["model"]["stem"] for c in quoted) == ["released", "small"]
    _, forced = multirun("++model.depth=26,50")  # prefixes keep Hydra's meaning
    assert sorted(c.config["model"]["depth"] for c in forced) == [26, 50]


def test_config_group_sweep_composes_each_choice():
    _, cells = multirun("recipe=fast,short_regime", "model.width=0.25,0.5")
    assert len(cells) == 4
    for name in ("fast", "short_regime"):
        _, alone = expand(compose([f"recipe={name}", "model.width=0.5"]))
        mine = [c for c in cells if c.config["recipe"]["name"] == name and c.config["model"]["width"] == 0.5]
        assert signature(mine) == signature(alone)
        assert mine[0].axes == {"recipe": name, "model.width": 0.5}
    _, globbed = multirun("recipe=glob(*)")  # every recipe preset in conf/recipe
    assert sorted(c.config["recipe"]["name"] for c in globbed) == ["fast", "rs_paper", "short_regime"]


def test_a_failing_combination_fails_the_whole_expansion_naming_it():
    with pytest.raises(MultirunError, match=r"model\.depth=37, model\.width=0\.25\).*model\.depth=37 is not"):
        multirun("model.depth=26,37", "model.width=0.25,0.5")
    with pytest.raises(MultirunError, match=r"data\.root.*\(data=imagenet\)"):  # no ImageNet here
        multirun("data=synthetic,imagenet")


def test_a_swept_field_that_does_not_change_results_is_refused_not_merged():
    with pytest.raises(MultirunError, match=r"logger\.mode=offline / disabled are the same cell"):
        multirun("logger.mode=disabled,offline", "model.depth=26,50")
    _, cells = multirun("model.depth=26,26,50")  # the same value twice is one cell, nothing lost
    assert sorted(c.config["model"]["depth"] for c in cells) == [26, 50]


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("cluster=local,slurm", "cluster is the same for every cell"),
        ("sweep.analyze=true,false", "only cell fields and config groups can be swept"),
        ("recipe.lr_base=interval(0.1,0.2)", "not a list of values"),
        ("model.nope=1,2", "Could not override 'model.nope'"),  # Hydra's own words
        ("+model.depth=26,50", "Could not append"),
    ],
)
def test_a_sweep_rsscale_cannot_run_is_an_error_naming_it(override, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        multirun(override)


def test_sweep_dir_comes_from_hydras_override_record(monkeypatch, tmp_path):
    monkeypatch.setenv("RSSCALE_SWEEP_ROOT", str(tmp_path))
    one = sweep_dir_of(RunMode.MULTIRUN, "model.depth=26,50")
    assert re.fullmatch(re.escape(str(tmp_path)) + r"/default-[0-9a-f]{8}", one)
    assert sweep_dir_of(RunMode.MULTIRUN, "model.depth=range(26,51,24)") == one
    assert sweep_dir_of(RunMode.MULTIRUN, "model.depth=50,26", "cluster=slurm", "logger.mode=disabled") == one
    assert sweep_dir_of(RunMode.MULTIRUN, "model.depth=26,101") != one
    # a -m without a sweep is the plain run; a grid file names its directory
    assert sweep_dir_of(RunMode.MULTIRUN, "model.depth=50") == sweep_dir_of(RunMode.RUN, "model.depth=50")
    assert sweep_dir_of(RunMode.RUN, "+grid=depth_width") == f"{tmp_path}/depth_width"
    narrowed = sweep_dir_of(RunMode.RUN, "+grid=depth_width", "grid.exclude=[{model.depth:26}]")
    assert narrowed.startswith(f"{tmp_path}/depth_width-")  # other cells: another directory
    # overrides from a config file (hydra.sweeper.params) read as the same sweep, with the same cells
    assert sweep_dir_of(RunMode.MULTIRUN, "hydra.sweeper.params={model.depth:'50,26'}") == one
    _, from_params = multirun("hydra.sweeper.params={model.depth:'26,50'}")
    assert signature(from_params) == signature(multirun("model.depth=26,50")[1])
    assert canonical([], {"model.depth": "50,26"}) == canonical(["model.depth=26,50"])
    assert canonical(["model.depth=26,50"]) == ["model.depth=26,50"]


def test_bad_combination_on_the_command_line_launches_nothing(tmp_path):
    d = tmp_path / "sw"
    proc = run_m(d, *TINY, "model.depth=26,37", "model.width=0.25,0.5", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model.depth=37" in proc.stderr and "is not a ResNet-RS depth" in proc.stderr
    assert not SweepLayout(d).manifest.exists() and not SweepLayout(d).cells.exists()


# ------------------------------------------------------------------------------ end to end (slow)
@pytest.mark.slow
def test_multirun_runs_every_cell_in_one_sweep_then_skips_them(tmp_path):
    d = tmp_path / "sw"
    out = run_m(d, *TINY, "model.depth=26,50", "model.width=0.25,0.5").stdout
    assert "4 cells" in out and "4 new" in out and "4 cells: 4 completed" in out, out
    manifest = json.loads(SweepLayout(d).manifest.read_text())
    assert manifest["grid"] == "default" and len(manifest["cells"]) == 4
    assert {(c["axes"]["model.depth"], c["axes"]["model.width"]) for c in manifest["cells"].values()} == {
        (26, 0.25),
        (26, 0.5),
        (50, 0.25),
        (50, 0.5),
    }
    recs = records(d)
    assert len(recs) == 4 and {r["status"] for r in recs.values()} == {"completed"}
    # no per-job dirs: only the sweep's own (cache/ holds the inductor caches the cells share)
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) in (
        ["cells", "logs"],
        ["cache", "cells", "logs"],
    )
    assert not [p.name for p in SweepLayout(d).logs.iterdir() if "%" in p.name]  # no literal logs/%j/
    before = attempts(d)
    assert set(before.values()) == {1}
    again = run_m(d, *TINY, "model.depth=26,50", "model.width=0.25,0.5").stdout
    assert "4 completed" in again and "0 new" in again
    assert attempts(d) == before  # nothing trained again
    assert sorted(r["status"] for r in status(d)) == ["completed"] * 4


@pytest.mark.slow
@pytest.mark.slurm
def test_multirun_on_slurm_is_one_array(slurm_cluster, tmp_path):
    d = tmp_path / "sw"
    try:
        out = run_m(d, *TINY, "cluster=slurm", "cluster.partition=debug", "model.width=0.25,0.5").stdout
        assert "submitted 2 cells as array" in out and "2 cells: 2 completed" in out, out
        cells = json.loads(SweepLayout(d).manifest.read_text())["cells"]
        ids = [c["submissions"][-1]["job_id"] for c in cells.values()]
        assert len({j.split("_")[0] for j in ids}) == 1 and sorted(j.split("_")[1] for j in ids) == ["0", "1"]
        assert {r["status"] for r in records(d).values()} == {"completed"}
    finally:
        if SweepLayout(d).manifest.exists():
            ids = [
                s["job_id"]
                for c in json.loads(SweepLayout(d).manifest.read_text())["cells"].values()
                for s in c["submissions"]
            ]
            subprocess.run(["scancel", *ids], capture_output=True, check=False, timeout=60)
