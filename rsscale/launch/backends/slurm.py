"""The SLURM backend: one job array per resource class, chunked to MaxArraySize and throttled with
array_parallelism. The scheduler holds the cells: the driver may exit after submission, since their
state comes from the manifest, the run records and one batched sacct (rsscale.launch.slurm)."""

from __future__ import annotations

import logging
import subprocess
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import read_job_id

from rsscale.launch import slurm as queries
from rsscale.launch.backends.base import Backend, EnvCarrier, JobView, LaunchHooks, WorkerJob
from rsscale.launch.resources import ResourceClass, gres_name, resource_class, time_bucket
from rsscale.launch.runner import CellRunner
from rsscale.layout import SweepLayout

log = logging.getLogger("rsscale.sweep")


class SlurmBackend(Backend):
    name = "slurm"
    owns_cells = False
    stop_signals = ()  # SIGTERM is the scheduler's kill; USR2 (before the time limit) checkpoints

    def with_limits(self) -> SlurmBackend:
        """The partition's CPUs and GPUs per node (`auto` in the profile), from sinfo."""
        return type(self)(queries.with_node_limits(self.cluster))

    def resource_class(self, cell: Mapping[str, Any]) -> ResourceClass:
        return resource_class(cell, self.cluster)

    def max_array_size(self) -> int:
        v = self.cluster.get("max_array_size", "auto")
        if v in (None, "auto"):
            return int(queries.site_limits().get("MaxArraySize", 1001)) - 1 or 1000
        return int(v)

    def executor(self, folder: Path, rc: ResourceClass, job_name: str) -> submitit.SlurmExecutor:
        """A submitit SLURM executor asking for `rc` (the sbatch lines of one array)."""
        c = self.cluster
        ex = submitit.SlurmExecutor(
            folder=SweepLayout(folder).submitit_folder, max_num_timeout=int(c["max_num_timeout"])
        )
        params: dict[str, Any] = dict(
            job_name=job_name,
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

    def submit_cells(
        self, sweep_dir: Path, items: list[tuple[str, ResourceClass]], group: str | None, hooks: LaunchHooks
    ) -> None:
        """One array per resource class, chunked to the site's MaxArraySize; `hooks.on_submit` for the
        cells of each array once it is queued, so that the caller records what is already queued if a
        later sbatch fails (its error propagates)."""
        by_class: dict[ResourceClass, list[str]] = defaultdict(list)
        for cell_id, rc in items:
            by_class[rc].append(cell_id)
        chunk = self.max_array_size()
        env = self.cell_env()
        for rc, cell_ids in by_class.items():
            ex = self.executor(sweep_dir, rc, f"rsscale-{sweep_dir.name}")
            for i in range(0, len(cell_ids), chunk):
                part = cell_ids[i : i + chunk]
                # torch would start one thread per core of the node (no binding without cgroups):
                # cells side by side then oversubscribe the cores, ~10-30x slower on small CPU cells
                runners = [
                    CellRunner(str(sweep_dir), cid, group, threads=rc.cpus_per_task, env=env) for cid in part
                ]
                with ex.batch():
                    jobs = [ex.submit(r) for r in runners]
                for cid, job in zip(part, jobs):
                    hooks.on_submit(cid, str(job.job_id))
                log.info(
                    "submitted %d cells as array %s (%s)",
                    len(part),
                    read_job_id(jobs[0].job_id)[0][0],
                    rc.key,
                )

    def job_states(self, job_ids: Sequence[str]) -> Mapping[str, JobView]:
        return queries.job_states(job_ids) if job_ids else {}

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            subprocess.run(["scancel", *job_ids], check=False, capture_output=True)

    def worker_class(self, trial_cell: Mapping[str, Any], trials_per_worker: int) -> ResourceClass:
        """A tuning worker's resources: one trial's, for its share of the trials (timeouts requeue it)."""
        rc = self.resource_class(trial_cell)
        cap = int(self.cluster.get("max_time_min") or 2880)
        return replace(rc, time_min=time_bucket(rc.time_min * trials_per_worker, cap))

    def submit_workers(
        self,
        study_dir: Path,
        workers: Sequence[EnvCarrier],
        trial_cell: Mapping[str, Any],
        trials_per_worker: int,
    ) -> list[WorkerJob]:
        """One array of workers, each asking for one trial's resources for its share of the trials."""
        limited = self.with_limits()
        rc = limited.worker_class(trial_cell, trials_per_worker)
        ex = limited.executor(study_dir, rc, f"rsscale-{Path(study_dir).name}")
        for w in workers:
            w.threads = rc.cpus_per_task
        jobs: list[WorkerJob] = []
        with ex.batch():
            jobs.extend(ex.submit(self.with_env(w)) for w in workers)
        return jobs
