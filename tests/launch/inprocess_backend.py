"""A backend that lives only in tests/: it runs each cell in the test's own process, one after the
other, through the same interface as the local and SLURM backends (rsscale.launch.backends.Backend).
Registering it touches no file of rsscale/: the seam is the registry and the `cluster.launcher` key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsscale.launch.backends import Backend, LaunchHooks, register
from rsscale.launch.resources import ResourceClass
from rsscale.launch.runner import CellRunner

NAME = "inprocess"


class DoneJob:
    """A finished job as tune expects one (submitit's Job: job_id, done(), result())."""

    def __init__(self, job_id: str, value: Any = None, error: BaseException | None = None):
        self.job_id, self.value, self.error = job_id, value, error

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class InProcessBackend(Backend):
    name = NAME
    owns_cells = True  # the cells live (and finish) inside `launch`
    stop_signals = ()
    launched: list[str] = []  # every cell it ran, in order (class-wide: the driver makes its own instance)

    def resource_class(self, cell: Mapping[str, Any]) -> ResourceClass:
        tasks = int(cell["runtime"].get("tasks", 1))
        if tasks != 1:
            raise ValueError(f"runtime.tasks={tasks}: the in-process backend runs one process per cell")
        return ResourceClass(tasks=1, nodes=1, gpus_per_node=0, cpus_per_task=1, mem_gb=0, time_min=5)

    def submit_cells(
        self, sweep_dir: Path, items: list[tuple[str, ResourceClass]], group: str | None, hooks: LaunchHooks
    ) -> None:
        for n, (cell_id, _rc) in enumerate(items):
            if hooks.should_stop():
                break
            hooks.on_submit(cell_id, f"{NAME}-{len(self.launched) + n}")
            type(self).launched.append(cell_id)
            err: BaseException | None = None
            try:
                CellRunner(str(sweep_dir), cell_id, group, threads=1, env=self.cell_env())()
            except Exception as e:  # noqa: BLE001 - a failed cell is the driver's to report
                err = e
            hooks.on_done(cell_id, err)
            if hooks.on_poll is not None:
                hooks.on_poll()

    def submit_workers(
        self, study_dir: Path, workers: Sequence[Any], trial_cell: Mapping[str, Any], trials_per_worker: int
    ) -> list[Any]:
        jobs = []
        for i, w in enumerate(workers):
            w.threads = 1
            try:
                jobs.append(DoneJob(f"{NAME}-w{i}", self.with_env(w)()))
            except Exception as e:  # noqa: BLE001 - tune reports a lost worker
                jobs.append(DoneJob(f"{NAME}-w{i}", error=e))
        return jobs


register(NAME, InProcessBackend)
