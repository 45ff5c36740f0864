"""Per-cell resources from cost: FLOPs x images x epochs over a profile's throughput.

Cells of one grid differ by orders of magnitude in cost; each gets GPUs (tasks), a time limit and
memory from its estimate, rounded up to a few buckets so that cells group into resource classes,
one job array per class.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rsscale.io import read_json
from rsscale.layout import SweepLayout

TIME_BUCKETS_MIN = (5, 10, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 10080)


class ResourceError(ValueError):
    """No profile can satisfy a cell (raised before anything is submitted)."""


@dataclass(frozen=True)
class ResourceClass:
    tasks: int  # processes (one per GPU on GPU clusters)
    nodes: int
    gpus_per_node: int  # GPUs asked for on each node (= tasks per node on GPU clusters; 0: CPU)
    cpus_per_task: int
    mem_gb: int  # per node
    time_min: int

    @property
    def key(self) -> str:
        g = f"{self.gpus_per_node}g" if self.gpus_per_node else "cpu"
        return f"n{self.nodes}-t{self.tasks}-{g}-c{self.cpus_per_task}-m{self.mem_gb}-{self.time_min}min"


def dataset_shape(data_cfg: Mapping[str, Any]) -> tuple[int, int, int]:
    """(training images after minival and train_subset, classes, channels): the dataset registry's
    facts (`rsscale.data.registry.shape`); an unknown data.name is a DataConfigError."""
    from rsscale.data.registry import shape

    s = shape(data_cfg)
    return s.train_images, s.num_classes, s.channels


def cell_cost(cell: Mapping[str, Any]) -> dict[str, float]:
    """Params, forward FLOPs per image and total training FLOPs (3x forward per image seen)."""
    from rsscale.models import model_cost

    n, classes, chans = dataset_shape(cell["data"])
    mc = model_cost(dict(cell["model"]), int(cell["data"]["train_res"]), classes, chans)
    epochs = int(cell["recipe"]["epochs"])
    return {
        "params": mc["params"],
        "flops_per_image": mc["flops_per_image"],
        "train_flops": 3.0 * mc["flops_per_image"] * n * epochs,
    }


# Local CPU cost model (seconds per training image on one core, fitted to 13 ResNet-RS shapes at
# 16 px on an AMD EPYC with bf16, within +-15% for all but the narrowest): FLOPs alone rank a deep
# narrow net (d270 x0.125: 53 MFLOPs, 4.8 ms) below a shallow wide one (d26 x0.4375: 60 MFLOPs,
# 2.6 ms), because each block also pays per-layer memory traffic and dispatch. Only ratios matter.
_S_PER_TRAIN_FLOP = 2.6e-5 / 1e6 / 3  # per training FLOP (3x forward)
_S_PER_BLOCK_PX = 44.5e-6 / 256  # per residual block per input pixel
# val images scored once at the end, minival every epoch; forward-only is about 1/3 of a train step
_EVAL_SHARE = 1.0 / 3.0


def local_cell_seconds(cell: Mapping[str, Any]) -> float:
    """Estimated one-core seconds to train and evaluate one cell (the local launcher's LPT key)."""
    from rsscale.data.registry import shape
    from rsscale.models.resnet_rs import DEPTH_BLOCKS

    sizes = shape(cell["data"])
    n = sizes.train_images
    model, res = cell["model"], int(cell["data"]["train_res"])
    blocks = sum(model.get("blocks") or DEPTH_BLOCKS.get(model.get("depth"), (4, 4, 4, 4)))
    c = cell_cost(cell)
    per_image = 3.0 * c["flops_per_image"] * _S_PER_TRAIN_FLOP + blocks * res * res * _S_PER_BLOCK_PX
    epochs = float(cell["recipe"]["epochs"])
    val = sizes.val_images
    minival = 0.02 * n * epochs
    return per_image * (n * epochs + _EVAL_SHARE * (val + minival))


def longest_first(items: Sequence[tuple[str, Any]], cost: Callable[[str], float]) -> list[tuple[str, Any]]:
    """Items sorted by `cost(cell_id)`, largest first (ties keep their order).

    Longest-processing-time-first: on a few cores the biggest cell, started last, would run
    alone at the tail while the other cores sit idle (3.5 of 18 minutes on the old demo).
    """
    costs = {cid: float(cost(cid)) for cid, _ in items}
    return sorted(items, key=lambda it: -costs[it[0]])


def cell_dir_cost(sweep_dir: str | os.PathLike) -> Callable[[str], float]:
    """`local_cell_seconds` of a cell from its `cells/<id>/config.json` (0 if unreadable)."""

    def cost(cell_id: str) -> float:
        try:
            return local_cell_seconds(read_json(SweepLayout(sweep_dir).cell(cell_id).config))
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    return cost


def time_bucket(minutes: float, cap: int) -> int:
    """The smallest time bucket that holds `minutes`, at most `cap`: cells group into few classes."""
    for b in TIME_BUCKETS_MIN:
        if minutes <= b:
            return min(b, cap)
    return cap


def resource_class(cell: Mapping[str, Any], cluster: Mapping[str, Any]) -> ResourceClass:
    """The resources one cell gets on a scheduler's cluster profile (nodes of `gpus_per_node` GPUs,
    a time limit from the cost estimate); ResourceError if none fits. This machine's: `local_class`."""
    tasks = int(cell["runtime"].get("tasks", 1))
    gpn = int(cluster.get("gpus_per_node") or 0)
    max_nodes = int(cluster.get("max_nodes") or 1)
    if gpn:
        gres_name(cluster)  # a malformed cluster.gres fails here, before any job
        # one task per GPU, on as few nodes as hold them, the same number on each node
        nodes = math.ceil(tasks / gpn)
        if tasks % nodes:
            raise ResourceError(
                f"runtime.tasks={tasks} needs {nodes} nodes of cluster.gpus_per_node={gpn} GPUs but does "
                f"not split evenly over them: use a multiple of {nodes} tasks "
                f"(e.g. runtime.tasks={math.ceil(tasks / nodes) * nodes})"
            )
        per_node = tasks // nodes
        cpus = int(cluster.get("cpus_per_gpu") or 1)
    else:
        nodes, per_node, cpus = 1, tasks, int(cluster.get("cpus_per_task") or 1)
    if nodes > max_nodes:
        raise ResourceError(
            f"runtime.tasks={tasks} needs {nodes} nodes of {gpn or 'CPU'} "
            f"{'GPUs' if gpn else 'tasks'}; profile {cluster['name']} allows max_nodes={max_nodes}"
        )
    if gpn:
        _check_node_gpus(tasks, per_node, cluster)
    node_cpus = cluster.get("cpus_per_node")
    if isinstance(node_cpus, int) and per_node * cpus > node_cpus:
        raise ResourceError(
            f"runtime.tasks={tasks} needs {per_node} tasks x {cpus} CPUs = {per_node * cpus} CPUs "
            "on one node; "
            f"nodes of profile {cluster['name']} (partition {cluster.get('partition') or 'default'}) "
            f"have {node_cpus}"
        )
    mem = math.ceil(float(cluster.get("mem_gb_per_cpu") or 2.0) * cpus * per_node)
    if cluster.get("max_mem_gb_per_node") and mem > int(cluster["max_mem_gb_per_node"]):
        raise ResourceError(
            f"cell needs {mem} GB per node; profile {cluster['name']} offers {cluster['max_mem_gb_per_node']}"
        )
    cost = cell_cost(cell)
    seconds = cost["train_flops"] / (float(cluster.get("throughput_flops") or 1e12) * tasks)
    minutes = seconds / 60 * float(cluster.get("time_margin") or 1.5) + int(cluster.get("min_time_min") or 5)
    time_min = time_bucket(minutes, int(cluster.get("max_time_min") or 2880))
    return ResourceClass(tasks, nodes, per_node if gpn else 0, cpus, mem, time_min)


def gres_name(cluster: Mapping[str, Any]) -> str:
    """The generic resource a GPU profile asks for: `cluster.gres` (name or name:type), else "gpu".

    rsscale appends the count itself (one GPU per task), so a count in `gres` is an error.
    """
    gres = cluster.get("gres")
    if not gres:
        return "gpu"
    parts = str(gres).split(":")
    if len(parts) > 2 or parts[-1].isdigit() or not all(parts):
        raise ResourceError(
            f"cluster.gres={gres!r}: give the GPU resource as name or name:type (e.g. gpu or gpu:a100), "
            "without a count: rsscale asks for one GPU per task on each node itself"
        )
    return str(gres)


def _check_node_gpus(tasks: int, per_node: int, cluster: Mapping[str, Any]) -> None:
    """A job asking for more GPUs on one node than its nodes have is refused or pends forever."""
    limit = cluster.get("max_gpus_per_node")
    if not isinstance(limit, int) or per_node <= limit:
        return  # "auto" not resolved (no sinfo) or null: unchecked
    gres, gpn = gres_name(cluster), cluster["gpus_per_node"]
    where = f"partition {cluster.get('partition') or '(default)'} of profile {cluster['name']}"
    if limit == 0:
        raise ResourceError(
            f"cluster.gpus_per_node={gpn}, but the nodes of {where} have no {gres} GPUs "
            "(sinfo's generic resources): choose a GPU partition (cluster.partition=...), the gres it "
            "declares (cluster.gres=...), or cluster.gpus_per_node=0 for CPU tasks"
        )
    raise ResourceError(
        f"runtime.tasks={tasks} asks for {per_node} GPUs on one node (one per task, cluster.gpus_per_node="
        f"{gpn}), but the nodes of {where} have at most {limit} ({gres}, cluster.max_gpus_per_node): set "
        f"cluster.gpus_per_node={limit} (the cell then spans {math.ceil(tasks / limit)} nodes, within "
        "cluster.max_nodes) or use fewer runtime.tasks"
    )


def local_class(cell: Mapping[str, Any], cluster: Mapping[str, Any]) -> ResourceClass:
    """The resources one cell gets on this machine (its GPUs or cores); ResourceError if none fits."""
    tasks = int(cell["runtime"].get("tasks", 1))
    gpus = visible_gpus()
    if gpus and tasks > gpus:
        raise ResourceError(f"runtime.tasks={tasks} but this machine has {gpus} GPUs")
    cpus = os.cpu_count() or 1
    if not gpus and tasks > cpus:
        raise ResourceError(f"runtime.tasks={tasks} CPU processes but this machine has {cpus} cores")
    return ResourceClass(tasks, 1, tasks if gpus else 0, 1, 0, int(cluster.get("timeout_min") or 10080))


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


def local_parallelism(
    cluster: Mapping[str, Any], tasks_per_cell: int = 1, n_cells: int | None = None
) -> tuple[int, int]:
    """(cells at once, threads per cell) on this machine: never oversubscribe cores; one GPU per job.

    With fewer cells than cores the spare cores become threads of the cells that run.
    """
    par, threads = _local_parallelism(cluster, tasks_per_cell)
    if n_cells and n_cells < par and cluster.get("cpus_per_cell", "auto") == "auto" and not visible_gpus():
        par = max(1, n_cells)
        threads = max(1, (os.cpu_count() or 1) // (par * tasks_per_cell))
    return par, threads


def _local_parallelism(cluster: Mapping[str, Any], tasks_per_cell: int) -> tuple[int, int]:
    gpus = visible_gpus()
    cpus = os.cpu_count() or 1
    mp = cluster.get("max_parallel", "auto")
    cpc = cluster.get("cpus_per_cell", "auto")
    if gpus:
        par = gpus // max(1, tasks_per_cell) if mp == "auto" else int(mp)
        threads = max(1, cpus // max(1, par * tasks_per_cell)) if cpc == "auto" else int(cpc)
        return max(1, par), threads
    # Small CPU cells run best one thread each, side by side: OpenMP threads that share cores
    # with other processes spin and can slow training by 10x.
    if cpc == "auto":
        cpc = 1 if mp == "auto" else max(1, cpus // (int(mp) * tasks_per_cell))
    par = max(1, cpus // (int(cpc) * tasks_per_cell)) if mp == "auto" else int(mp)
    return par, max(1, int(cpc))
