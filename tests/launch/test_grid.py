"""Grid expansion, validation and resource classes: before anything is submitted."""

from __future__ import annotations

import re

import pytest
from hydra.errors import HydraException, MissingConfigException

from rsscale.config import cell_hash, compose
from rsscale.launch.grid import GridError, expand
from rsscale.launch.resources import ResourceError, resource_class
from tests.launch.sweep_helpers import TEST_GRIDS


def cfg(*overrides: str):
    return compose(list(overrides))


def test_depth_width_grid_has_two_seven_point_paths_in_two_regimes_with_stable_hashes():
    _, cells = expand(cfg("+grid=depth_width"))
    assert len(cells) == 26  # per regime 7 depths + 7 widths - the shared base
    regimes = {(c.config["recipe"]["epochs"], c.config["data"]["train_subset"]) for c in cells}
    assert regimes == {(4, 4000), (16, 512)}  # short: many images, few epochs; long: few, many
    for regime in regimes:
        shapes = {
            (c.config["model"]["depth"], c.config["model"]["width"])
            for c in cells
            if (c.config["recipe"]["epochs"], c.config["data"]["train_subset"]) == regime
        }
        assert {d for d, w in shapes if w == 0.125} == {26, 50, 101, 152, 200, 270, 350}
        assert {w for d, w in shapes if d == 26} == {0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375, 0.5}
    long = [c for c in cells if c.config["recipe"]["epochs"] == 16]
    assert {c.config["runtime"]["eval_every_epochs"] for c in long} == {4}  # minival cadence
    _, again = expand(cfg("+grid=depth_width"))
    assert [c.hash for c in cells] == [c.hash for c in again]
    assert len({c.cell_id for c in cells}) == 26
    # the short regime is the previous default grid, cell for cell (so a sweep directory of the
    # old grid skips them as completed)
    ids = {c.cell_id for c in cells}
    assert {"d26-w0.125-r16-e4-35fdc4d5", "d270-w0.125-r16-e4-5b1dcb9a", "d26-w0.4375-r16-e4-acfeb70c"} <= ids


def test_paper_grid_cases_and_exclusions():
    _, cells = expand(cfg("+grid=paper", "data=imagenet", "data.root=/nonexistent"), validate=False)
    # 7 depths x 5 widths x 5 resolutions x (2 short budgets + 1 long) = 525
    assert len(cells) == 525
    long = [c for c in cells if c.config["recipe"]["epochs"] == 350]
    assert all(c.config["recipe"]["ema_decay"] == 0.9999 for c in long)
    rs350 = next(
        c for c in long if c.config["model"]["depth"] == 350 and c.config["data"]["train_res"] == 320
    )
    assert rs350.config["model"]["dropout"] == 0.4 and rs350.config["model"]["drop_path_rate"] == 0.1
    short = [c for c in cells if c.config["recipe"]["epochs"] in (10, 100)]
    assert all(c.config["recipe"]["randaugment_magnitude"] is None for c in short)
    assert all(c.config["data"]["eval_res"] == c.config["data"]["train_res"] for c in cells)


def test_additive_grid_is_table1():
    _, cells = expand(cfg("+grid=additive", "data=synthetic"), validate=False)
    assert [c.case for c in cells][:2] == ["baseline", "+cosine_lr"]
    assert len(cells) == 11
    assert cells[0].config["model"]["se_ratio"] == 0.0 and cells[-1].config["model"]["resnet_d"] is True


def test_hash_ignores_paths_and_speed_knobs_but_not_results():
    base = expand(cfg("data=synthetic"))[1][0].config
    moved = expand(cfg("data=synthetic", "runtime.progress=none", "logger.mode=disabled"))[1][0].config
    assert cell_hash(base) == cell_hash(moved)
    other = expand(cfg("data=synthetic", "runtime.seed=1"))[1][0].config
    assert cell_hash(base) != cell_hash(other)


def test_unknown_grid_is_a_hydra_error_listing_the_options():
    with pytest.raises(MissingConfigException) as e:
        cfg("+grid=nope")
    assert "depth_width" in str(e.value)


def test_empty_axis_is_rejected(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "empty.yaml").write_text("name: empty\naxes:\n  model.depth: []\n")
    with pytest.raises(GridError, match="model.depth is empty"):
        expand(cfg("+grid=empty", f"hydra.searchpath=[file://{tmp_path}]"))


def test_invalid_axis_value_names_the_cell_and_field(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "bad.yaml").write_text("name: bad\naxes:\n  model.depth: [26, 37]\n")
    with pytest.raises(GridError, match=r"model.depth=37.*model.depth"):
        expand(cfg("+grid=bad", f"hydra.searchpath=[file://{tmp_path}]", "data=synthetic"))


def test_unknown_axis_key_is_rejected(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "typo.yaml").write_text("name: typo\naxes:\n  model.dept: [26]\n")
    with pytest.raises(GridError, match="model.dept"):
        expand(cfg("+grid=typo", f"hydra.searchpath=[file://{tmp_path}]"))
    # the same check as a search space's (rsscale.tune.space): the group's fields are listed
    with pytest.raises(GridError, match=r"axis 'model.dept' is not a config field; model has: .*depth"):
        expand(cfg("+grid=typo", f"hydra.searchpath=[file://{tmp_path}]"))
    (tmp_path / "grid" / "group.yaml").write_text("name: group\nfixed:\n  optim.lr: 0.1\n")
    with pytest.raises(GridError, match=r"fixed field 'optim.lr' is not a cell field \(groups: model"):
        expand(cfg("+grid=group", f"hydra.searchpath=[file://{tmp_path}]"))


def test_unknown_field_override_is_a_hydra_error():
    with pytest.raises(HydraException):
        cfg("recipe.nope=1")


def test_test_grid_with_cases_and_exclusion():
    _, cells = expand(cfg("+grid=faulty", f"hydra.searchpath=[file://{TEST_GRIDS}]", "data=synthetic"))
    assert len(cells) == 3
    assert sum(c.config["runtime"]["fail_at_step"] == 2 for c in cells) == 1


SLURM_GPU = {
    "name": "gpu_site",
    "gpus_per_node": 8,
    "cpus_per_gpu": 8,
    "mem_gb_per_cpu": 4,
    "max_nodes": 2,
    "throughput_flops": 2e14,
    "time_margin": 1.5,
    "min_time_min": 5,
    "max_time_min": 2880,
}


def test_resources_grow_with_cost_and_group_into_classes():
    _, cells = expand(cfg("+grid=paper", "data=imagenet", "data.root=/x"), validate=False)
    small = next(
        c
        for c in cells
        if c.axes == {"model.depth": 26, "model.width": 0.25, "data.train_res": 128, "recipe.epochs": 10}
    )
    big = next(
        c
        for c in cells
        if c.axes == {"model.depth": 400, "model.width": 2.0, "data.train_res": 448, "recipe.epochs": 350}
    )
    rs, rb = resource_class(small.config, SLURM_GPU), resource_class(big.config, SLURM_GPU)
    assert rs.time_min < rb.time_min == 2880
    classes = {resource_class(c.config, SLURM_GPU).key for c in cells}
    assert 2 <= len(classes) <= 15


def test_resources_no_profile_can_satisfy():
    cell = expand(cfg("data=synthetic", "runtime.tasks=32", "recipe.batch_size=256"))[1][0].config
    with pytest.raises(ResourceError, match="max_nodes"):
        resource_class(cell, SLURM_GPU)


def test_resources_cpu_tasks_must_fit_one_node():
    """A CPU cell asking for more CPUs than a node has would pend forever: rejected up front."""
    cell = expand(cfg("data=synthetic", "runtime.tasks=16", "recipe.batch_size=256"))[1][0].config
    cpu = {"name": "cpu_site", "gpus_per_node": 0, "cpus_per_task": 1, "cpus_per_node": 8}
    with pytest.raises(ResourceError, match="16 CPUs on one node"):
        resource_class(cell, cpu)
    assert resource_class(cell, {**cpu, "cpus_per_node": 16}).tasks == 16
    assert resource_class(cell, {**cpu, "cpus_per_node": None}).tasks == 16  # unknown: not checked


def test_command_line_wins_over_the_grids_fixed_fields_and_axes(tmp_path):
    text = "axes:\n  recipe.epochs: [1, 2]\n  model.depth: [26, 50]\nfixed:\n  data.train_subset: 4000\n"
    lines = ["+grid=g", "data.train_subset=500", "recipe.epochs=3", "recipe.batch_size=64"]
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "g.yaml").write_text("name: g\n" + text)
    spec, cells = expand(
        cfg(*lines, f"hydra.searchpath=[file://{tmp_path}]", "data=synthetic"), overrides=lines
    )
    assert len(cells) == 2  # the epochs axis became the single value; the depth axis stays
    assert {c.config["data"]["train_subset"] for c in cells} == {500}  # the grid's fixed says 4000
    assert {c.config["recipe"]["epochs"] for c in cells} == {3}  # the grid's axis says [1, 2]
    assert {c.config["recipe"]["batch_size"] for c in cells} == {64}
    assert all(c.axes["recipe.epochs"] == 3 for c in cells)
    said = "; ".join(spec["command_line"])
    assert (
        "data.train_subset=500 (grid fixed: 4000)" in said and "recipe.epochs=3 (grid axis: [1, 2])" in said
    )


def test_command_line_wins_over_the_default_grids_case_overrides():
    lines = ["+grid=depth_width", "data.train_subset=500", "recipe.epochs=32", "recipe.batch_size=64"]
    spec, cells = expand(cfg(*lines), overrides=lines)
    assert len(cells) == 26
    assert {c.config["data"]["train_subset"] for c in cells} == {500}  # the cases say 4000 and 512
    assert {c.config["recipe"]["epochs"] for c in cells} == {32}  # the cases say 4 and 16
    assert {c.config["recipe"]["batch_size"] for c in cells} == {64}
    said = "; ".join(spec["command_line"])
    assert "data.train_subset=500 (case 'depth-short': 4000)" in said
    assert "recipe.epochs=32 (case 'width-long': 16)" in said
    plain = {c.hash for c in expand(cfg("+grid=depth_width"))[1]}
    assert not plain & {c.hash for c in cells}


def test_command_line_replaces_a_case_override_and_a_case_axis():
    lines = ["+grid=depth_width", "model.depth=50"]
    spec, cells = expand(cfg(*lines), overrides=lines)
    assert {c.config["model"]["depth"] for c in cells} == {50}  # depth case axis and width case override
    said = "; ".join(spec["command_line"])
    assert "case 'width-short': 26" in said and "case 'depth-long' axis: [26, 50" in said


@pytest.mark.slow
def test_dry_run_says_what_the_command_line_changed(tmp_path):
    import subprocess
    import sys

    from tests.launch.sweep_helpers import REPO

    args = ["+grid=depth_width", "data.train_subset=500", "sweep.dry_run=true", f"hydra.sweep.dir={tmp_path}"]
    for mode in ([], ["-m"]):
        proc = subprocess.run(
            [sys.executable, "-m", "rsscale.sweep", *mode, *args], cwd=REPO, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert (
            "the command line replaces the grid's: data.train_subset=500 (case 'depth-short': 4000)"
            in proc.stdout
        )


def _grid(tmp_path, text: str, *extra: str):
    (tmp_path / "grid").mkdir(exist_ok=True)
    (tmp_path / "grid" / "g.yaml").write_text("name: g\n" + text)
    return expand(cfg("+grid=g", f"hydra.searchpath=[file://{tmp_path}]", "data=synthetic", *extra))


def test_grid_values_that_are_not_plain_values_are_refused_naming_the_key(tmp_path):
    with pytest.raises(GridError, match=r"axis 'model' is a group of fields, not one field.*model\.name"):
        _grid(tmp_path, "axes:\n  model: [{depth: 26}, {depth: 50}]\n")  # was KeyError: 'width'
    with pytest.raises(GridError, match=r"axis 'runtime.threads': value \{'a': 1\} is not a plain value"):
        _grid(tmp_path, "axes:\n  runtime.threads: [{a: 1}, 2]\n")
    with pytest.raises(GridError, match=r"fixed field 'recipe.epochs': value \[1, 2\] is not a plain"):
        _grid(tmp_path, "fixed:\n  recipe.epochs: [1, 2]\n")
    # two values of a field outside the hash are one cell: one of them would silently never run
    with pytest.raises(
        GridError, match=r"runtime.threads=2 / 1 are the same cell .* does not change the results"
    ):
        _grid(tmp_path, "axes:\n  runtime.threads: [1, 2]\n")
    _, cells = _grid(tmp_path, "axes:\n  model.blocks: [[1, 1, 1, 1], [1, 2, 2, 1]]\n")  # a list field
    assert [c.config["model"]["blocks"] for c in cells] == [[1, 1, 1, 1], [1, 2, 2, 1]]


@pytest.mark.parametrize(
    "override, message",
    [
        ("runtime.threads=-3", "runtime.threads must be >= 1, got -3"),
        ("runtime.threads=abc", "runtime.threads must be a number, got 'abc'"),
        ("runtime.eval_batch_size=0", "runtime.eval_batch_size must be >= 1"),
        ("runtime.checkpoint_every_minutes=-1", "runtime.checkpoint_every_minutes must be >= 0"),
        ("runtime.measure_latency=maybe", "runtime.measure_latency must be true or false"),
        ("runtime.progress=loud", "runtime.progress='loud': allowed auto, bar, log, none"),
    ],
)
def test_runtime_fields_outside_the_hash_are_checked_before_launch(override, message):
    with pytest.raises(GridError, match=re.escape(message)):
        expand(cfg("data=synthetic", override))
