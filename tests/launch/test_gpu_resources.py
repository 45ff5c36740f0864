"""How a GPU cell's runtime.tasks become nodes, GPUs and sbatch lines (no cluster needed).

One task per GPU, nodes = ceil(tasks / cluster.gpus_per_node), the same number of tasks on each
node; the sbatch lines are the ones submitit writes for the launcher's executor. The same cells
through the real scheduler: tests/launch/test_slurm_gpu.py.
"""

from __future__ import annotations

import re

import pytest

from rsscale.launch.backends import SlurmBackend
from rsscale.launch.resources import ResourceError, resource_class
from rsscale.launch.slurm import node_gpus

SITE = {
    "name": "gpu_site",
    "partition": "gpu",
    "gpus_per_node": 4,
    "cpus_per_gpu": 6,
    "mem_gb_per_cpu": 2.0,
    "max_nodes": 4,
    "max_gpus_per_node": 4,
    "cpus_per_node": 32,
    "max_num_timeout": 3,
}


def cell(tasks: int) -> dict:
    return {
        "model": {"name": "resnet_rs", "depth": 26, "width": 0.25},
        "data": {"name": "synthetic", "size": 512, "num_classes": 10, "train_res": 16},
        "recipe": {"epochs": 1},
        "runtime": {"tasks": tasks},
    }


def sbatch_lines(tmp_path, cluster: dict, tasks: int) -> set[str]:
    rc = resource_class(cell(tasks), cluster)
    ex = SlurmBackend(cluster).executor(tmp_path, rc, "rsscale-test")
    text = ex._make_submission_file_text("python -c pass", "uid")  # what submitit hands to sbatch
    return set(re.findall(r"^#SBATCH (.+)$", text, re.M))


@pytest.mark.parametrize(
    "tasks, nodes, per_node",
    [(1, 1, 1), (2, 1, 2), (4, 1, 4), (6, 2, 3), (8, 2, 4), (12, 3, 4), (16, 4, 4)],
)
def test_one_task_per_gpu_on_as_few_nodes_as_hold_them(tasks, nodes, per_node):
    rc = resource_class(cell(tasks), SITE)
    assert (rc.tasks, rc.nodes, rc.gpus_per_node) == (tasks, nodes, per_node)
    assert rc.cpus_per_task == 6 and rc.mem_gb == 2 * 6 * per_node  # cpus_per_gpu per task, memory per node
    assert rc.key.startswith(f"n{nodes}-t{tasks}-{per_node}g-c6-")


def test_tasks_that_do_not_split_evenly_over_the_nodes_are_refused():
    with pytest.raises(ResourceError, match=r"runtime.tasks=5 needs 2 nodes .* \(e.g. runtime.tasks=6\)"):
        resource_class(cell(5), SITE)
    with pytest.raises(ResourceError, match="allows max_nodes=4"):
        resource_class(cell(20), SITE)


def test_sbatch_lines_ask_for_each_nodes_gpus(tmp_path):
    lines = sbatch_lines(tmp_path, SITE, 8)  # two full nodes
    assert {"--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=6"} <= lines
    assert "--mem=48GB" in lines  # per node: 4 GPUs x 6 CPUs x 2 GB
    lines = sbatch_lines(tmp_path, SITE, 6)  # two nodes of three
    assert {"--nodes=2", "--ntasks-per-node=3", "--gpus-per-node=3"} <= lines
    assert not any(s.startswith("--gres") for s in lines)
    lines = sbatch_lines(tmp_path, SITE, 2)
    assert {"--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=2", "--partition=gpu"} <= lines


def test_a_gres_profile_gets_the_count_per_node_appended(tmp_path):
    typed = {**SITE, "gres": "gpu:a100"}
    lines = sbatch_lines(tmp_path, typed, 2)
    assert "--gres=gpu:a100:2" in lines and not any(s.startswith("--gpus-per-node") for s in lines)
    assert "--gres=gpu:a100:4" in sbatch_lines(tmp_path, typed, 8)


@pytest.mark.parametrize("gres", ["gpu:a100:1", "gpu:2", "gpu::"])
def test_a_gres_with_a_count_is_refused_naming_the_field(gres):
    with pytest.raises(ResourceError, match=r"cluster.gres=.*without a count"):
        resource_class(cell(2), {**SITE, "gres": gres})


def test_more_gpus_per_node_than_the_nodes_have_is_refused():
    profile = {**SITE, "gpus_per_node": 8, "cpus_per_node": None}  # 8 by the profile, 4 on the nodes
    with pytest.raises(ResourceError) as e:
        resource_class(cell(8), profile)
    msg = str(e.value)
    assert "runtime.tasks=8 asks for 8 GPUs on one node" in msg and "cluster.gpus_per_node=8" in msg
    assert "at most 4" in msg and "set cluster.gpus_per_node=4 (the cell then spans 2 nodes" in msg
    assert resource_class(cell(4), profile).gpus_per_node == 4  # what fits on a node still runs
    assert resource_class(cell(8), {**profile, "max_gpus_per_node": None}).gpus_per_node == 8  # unchecked


@pytest.mark.parametrize(
    "field, gres, count",
    [
        ("gpu:4", "gpu", 4),
        ("gpu:a100:4(S:0-1),gpu:v100:2", "gpu", 6),
        ("gpu:a100:4(S:0-1),gpu:v100:2", "gpu:a100", 4),
        ("gpu:a100:4(S:0,1)", "gpu:v100", 0),
        ("mps:400,gpu:2", "gpu", 2),
        ("(null)", "gpu", 0),
    ],
)
def test_node_gpus_from_sinfo_gres(field, gres, count):
    assert node_gpus(field, gres) == count
