"""Submitit launchers: local (throttled to the machine) and SLURM (job arrays per resource class).

Both take (cell_id, ResourceClass) pairs and hand back job ids for the manifest. SLURM arrays
are chunked to MaxArraySize and throttled with array_parallelism; the driver may exit after
submission, since status comes from the manifest, run records and one batched sacct.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import read_job_id

from rsscale.launch.cores import CoreSharer
from rsscale.launch.resources import ResourceClass, cell_dir_cost, gres_name, local_parallelism, longest_first
from rsscale.launch.runner import CellRunner
from rsscale.launch.supervision import shielded_spawn, stop_job
from rsscale.layout import SweepLayout

log = logging.getLogger("rsscale.sweep")


def local_executor(sweep_dir: str | Path) -> submitit.LocalExecutor:
    """A local submitit executor writing its job files under SWEEP_DIR/logs/ (no literal `%j` folder)."""
    return submitit.LocalExecutor(folder=SweepLayout(sweep_dir).local_submitit_folder)


class _Launcher:
    """What both launchers hold: the sweep directory, the cluster config and the W&B group."""

    name: str

    def __init__(self, sweep_dir: Path, cluster: Mapping[str, Any], group: str | None):
        self.sweep_dir = Path(sweep_dir)
        self.cluster = dict(cluster)
        self.group = group


class SlurmLauncher(_Launcher):
    name = "slurm"

    def max_array_size(self) -> int:
        v = self.cluster.get("max_array_size", "auto")
        if v in (None, "auto"):
            from rsscale.launch.slurm import site_limits

            return int(site_limits().get("MaxArraySize", 1001)) - 1 or 1000
        return int(v)

    def _executor(self, rc: ResourceClass) -> submitit.SlurmExecutor:
        c = self.cluster
        ex = submitit.SlurmExecutor(
            folder=SweepLayout(self.sweep_dir).submitit_folder, max_num_timeout=int(c["max_num_timeout"])
        )
        params: dict[str, Any] = dict(
            job_name=f"rsscale-{self.sweep_dir.name}",
            time=rc.time_min,
            nodes=rc.nodes,
            ntasks_per_node=max(1, rc.tasks // rc.nodes),
            cpus_per_task=rc.cpus_per_task,
            array_parallelism=int(c.get("array_parallelism") or 256),
            signal_delay_s=int(c.get("signal_delay_s") or 90),
            setup=list(c.get("setup") or []),
            additional_parameters=dict(c.get("additional_parameters") or {}),
            stderr_to_stdout=True,
        )
        if rc.mem_gb:
            params["mem"] = f"{rc.mem_gb}GB"
        if rc.gpus_per_node:  # one GPU per task: each node's tasks share its allocated GPUs
            if c.get("gres"):  # name[:type]; the count is the class's (resources.gres_name)
                params["gres"] = f"{gres_name(c)}:{rc.gpus_per_node}"
            else:
                params["gpus_per_node"] = rc.gpus_per_node
        for key in ("partition", "account", "qos", "constraint"):
            if c.get(key):
                params[key] = c[key]
        ex.update_parameters(**params)
        return ex

    def submit(
        self,
        items: Sequence[tuple[str, ResourceClass]],
        on_array: Callable[[dict[str, str]], None] | None = None,
    ) -> dict[str, str]:
        """Submit every cell; one array per resource class, chunked to the site's MaxArraySize.

        `on_array({cell_id: job_id})` is called after each array, so that the caller can record
        what is already queued if a later sbatch fails (its error propagates).
        """
        by_class: dict[ResourceClass, list[str]] = defaultdict(list)
        for cell_id, rc in items:
            by_class[rc].append(cell_id)
        chunk = self.max_array_size()
        out: dict[str, str] = {}
        for rc, cell_ids in by_class.items():
            ex = self._executor(rc)
            for i in range(0, len(cell_ids), chunk):
                part = cell_ids[i : i + chunk]
                # torch would start one thread per core of the node (no binding without cgroups):
                # cells side by side then oversubscribe the cores, ~10-30x slower on small CPU cells
                runners = [
                    CellRunner(str(self.sweep_dir), cid, self.group, threads=rc.cpus_per_task) for cid in part
                ]
                with ex.batch():
                    jobs = [ex.submit(r) for r in runners]
                ids = {cid: str(job.job_id) for cid, job in zip(part, jobs)}
                out.update(ids)
                if on_array is not None:
                    on_array(ids)
                log.info(
                    "submitted %d cells as array %s (%s)",
                    len(part),
                    read_job_id(jobs[0].job_id)[0][0],
                    rc.key,
                )
        return out

    @staticmethod
    def cancel(job_ids: Sequence[str]) -> None:
        import subprocess

        if job_ids:
            subprocess.run(["scancel", *job_ids], check=False, capture_output=True)


class LocalLauncher(_Launcher):
    """Runs cells as local submitit jobs, as many at once as the machine allows (no oversubscription)."""

    name = "local"

    def run(
        self,
        items: Sequence[tuple[str, ResourceClass]],
        on_submit: Callable[[str, str], None],
        on_done: Callable[[str, BaseException | None], None],
        poll_s: float = 0.5,
        should_stop: Callable[[], bool] = lambda: False,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        """Blocking: keep up to `parallel` cells running until all are done, longest first;
        `on_poll()` runs once per poll (the driver's live view)."""
        queue = longest_first(items, cell_dir_cost(self.sweep_dir))
        running: dict[str, submitit.Job] = {}
        stopped: set[str] = set()
        max_tasks = max((rc.tasks for _, rc in items), default=1)
        parallel, threads = local_parallelism(self.cluster, max_tasks, len(items))
        log.info("local launcher: %d cell(s) at a time, %d thread(s) each", parallel, threads)
        sharer = CoreSharer(self.sweep_dir, self.cluster, threads, max_tasks)
        while queue or running:
            while queue and len(running) < parallel and not should_stop():
                cell_id, rc = queue.pop(0)
                ex = local_executor(self.sweep_dir)
                ex.update_parameters(
                    timeout_min=rc.time_min,
                    tasks_per_node=rc.tasks,
                    gpus_per_node=rc.gpus_per_node,
                )
                with shielded_spawn():  # the terminal's SIGINT/SIGHUP reach the driver, not the cells
                    job = ex.submit(CellRunner(str(self.sweep_dir), cell_id, self.group, threads))
                running[cell_id] = job
                on_submit(cell_id, f"local-{job.job_id}")
            sharer.update(list(running), len(queue))
            if should_stop():
                for cell_id, job in running.items():
                    if cell_id not in stopped:
                        stop_job(job)  # the cell checkpoints and stops (`preempted`)
                        stopped.add(cell_id)
                queue.clear()
            if on_poll is not None:
                on_poll()
            time.sleep(poll_s)
            for cell_id, job in list(running.items()):
                if job.done():
                    del running[cell_id]
                    try:
                        job.result()
                        err = None
                    except BaseException as e:  # noqa: BLE001 - isolate failures per cell
                        err = e
                    on_done(cell_id, err)
