"""The local backend: cells run on this machine as submitit local jobs, as many at once as it allows.

The driver owns them: it runs them to the end inside `launch`, stops them with SIGTERM (they
checkpoint and stop), and a detached sweep is a detached driver process (rsscale.driver).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import submitit

from rsscale.launch.backends.base import Backend, BackendError, EnvCarrier, LaunchHooks, WorkerJob
from rsscale.launch.cores import CoreSharer
from rsscale.launch.resources import (
    ResourceClass,
    cell_dir_cost,
    local_class,
    local_parallelism,
    longest_first,
)
from rsscale.launch.runner import CellRunner
from rsscale.launch.supervision import pid_alive, shielded_spawn, stop_job
from rsscale.layout import SweepLayout

log = logging.getLogger("rsscale.sweep")


def local_executor(sweep_dir: str | Path) -> submitit.LocalExecutor:
    """A local submitit executor writing its job files under SWEEP_DIR/logs/ (no literal `%j` folder)."""
    return submitit.LocalExecutor(folder=SweepLayout(sweep_dir).local_submitit_folder)


class LocalBackend(Backend):
    """Runs cells as local submitit jobs, as many at once as the machine allows (no oversubscription)."""

    name = "local"
    owns_cells = True
    stop_signals = ("SIGTERM",)
    poll_s = 0.5

    def check_cells(self, configs: Sequence[Mapping[str, Any]], cell_ids: Sequence[str]) -> None:
        """A cell that asks for a GPU must find one here, before anything runs."""
        want = [cid for cid, c in zip(cell_ids, configs) if c["runtime"].get("device") == "cuda"]
        if want:
            import torch

            if not torch.cuda.is_available():
                raise BackendError(
                    f"cell {want[0]}: runtime.device=cuda, but this host has no usable CUDA GPU and "
                    "cluster=local runs cells here; use runtime.device=auto or cpu, or cluster=slurm"
                )

    def resource_class(self, cell: Mapping[str, Any]) -> ResourceClass:
        return local_class(cell, self.cluster)

    def submit_cells(
        self, sweep_dir: Path, items: list[tuple[str, ResourceClass]], group: str | None, hooks: LaunchHooks
    ) -> None:
        """Blocking: keep up to `parallel` cells running until all are done, longest first."""
        queue = longest_first(items, cell_dir_cost(sweep_dir))
        running: dict[str, submitit.Job] = {}
        stopped: set[str] = set()
        max_tasks = max((rc.tasks for _, rc in items), default=1)
        parallel, threads = local_parallelism(self.cluster, max_tasks, len(items))
        log.info("local launcher: %d cell(s) at a time, %d thread(s) each", parallel, threads)
        sharer = CoreSharer(sweep_dir, self.cluster, threads, max_tasks)
        env = self.cell_env()
        while queue or running:
            while queue and len(running) < parallel and not hooks.should_stop():
                cell_id, rc = queue.pop(0)
                ex = local_executor(sweep_dir)
                ex.update_parameters(
                    timeout_min=rc.time_min, tasks_per_node=rc.tasks, gpus_per_node=rc.gpus_per_node
                )
                with shielded_spawn():  # the terminal's SIGINT/SIGHUP reach the driver, not the cells
                    job = ex.submit(CellRunner(str(sweep_dir), cell_id, group, threads, env=env))
                running[cell_id] = job
                hooks.on_submit(cell_id, self.manifest_job_id(str(job.job_id)))
            sharer.update(list(running), len(queue))
            if hooks.should_stop():
                for cell_id, job in running.items():
                    if cell_id not in stopped:
                        stop_job(job)  # the cell checkpoints and stops (`preempted`)
                        stopped.add(cell_id)
                queue.clear()
            if hooks.on_poll is not None:
                hooks.on_poll()
            time.sleep(self.poll_s)
            for cell_id, job in list(running.items()):
                if job.done():
                    del running[cell_id]
                    try:
                        job.result()
                        err = None
                    except BaseException as e:  # noqa: BLE001 - isolate failures per cell
                        err = e
                    hooks.on_done(cell_id, err)

    def process_alive(self, attempt: Mapping[str, Any]) -> bool:
        return attempt.get("host") == socket.gethostname() and pid_alive(int(attempt["pid"]))

    def manifest_job_id(self, raw: str) -> str:
        return f"local-{raw}"

    def log_files(self, logs: Path, job_id: str) -> list[Path]:
        """Local job files go flat into logs/ (rsscale.layout), named by the process id."""
        return super().log_files(logs, job_id.removeprefix("local-"))

    def submit_workers(
        self,
        study_dir: Path,
        workers: Sequence[EnvCarrier],
        trial_cell: Mapping[str, Any],
        trials_per_worker: int,
    ) -> list[WorkerJob]:
        threads = max(1, (os.cpu_count() or 1) // max(1, len(workers)))
        jobs: list[WorkerJob] = []
        for w in workers:
            w.threads = threads
            ex = local_executor(study_dir)
            ex.update_parameters(timeout_min=int(self.cluster.get("timeout_min") or 10080))
            jobs.append(ex.submit(self.with_env(w)))
        return jobs
