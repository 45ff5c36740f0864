"""The backend seam: what differs between the places cells run (local processes, SLURM arrays, ...).

Modelled on submitit's template-method `Executor`: the sweep driver, `rsscale.status` and tune call
only the public methods below; a backend overrides a few small hooks. Nothing outside the backends
asks which backend it has: they ask what it can do (`owns_cells`, `job_states`, ...).
See docs/backends.md for how to add one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rsscale.launch.resources import ResourceClass
from rsscale.train.stop_signals import STOP_SIGNALS_ENV


class BackendError(ValueError):
    """A cluster profile or cell a backend cannot run (raised before anything is submitted)."""


class JobView(Protocol):
    """A scheduler's view of one job (rsscale.launch.slurm.JobState is one): the state name."""

    @property
    def state(self) -> str: ...


class WorkerJob(Protocol):
    """What tune needs of a submitted worker (submitit's Job is one)."""

    @property
    def job_id(self) -> str: ...

    def done(self) -> bool: ...

    def result(self) -> Any: ...


class EnvCarrier(Protocol):
    """A submitted callable (CellRunner, TuneWorker) that sets `env` in its process before it runs."""

    env: dict[str, str]
    threads: int | None

    def __call__(self) -> Any: ...


@dataclass
class LaunchHooks:
    """The driver's callbacks during `Backend.launch`.

    on_submit(cell_id, job_id): a cell is queued or started (the manifest records it at once);
    on_done(cell_id, error), should_stop() and on_poll(): only for backends that own their cells
    (they run them to the end inside `launch`)."""

    on_submit: Callable[[str, str], None]
    on_done: Callable[[str, BaseException | None], None] = field(default=lambda cid, err: None)
    should_stop: Callable[[], bool] = field(default=lambda: False)
    on_poll: Callable[[], None] | None = None


class Backend(ABC):
    """Runs cells (and tuning workers) somewhere. One instance per cluster profile."""

    #: the registry key and the manifest's `launcher` field of every submission it makes
    name: ClassVar[str] = ""
    #: True: cells live only while the driver does (it runs them inside `launch`, stops them on its
    #: own stop signals, and a detached sweep needs a driver process); False: a scheduler holds them,
    #: `launch` returns once they are queued and the driver may exit
    owns_cells: ClassVar[bool] = False
    #: signals (names) on which a cell checkpoints and stops, besides the scheduler's USR2; handed to
    #: the cells in their environment (rsscale.train.stop_signals reads it)
    stop_signals: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cluster: Mapping[str, Any]):
        self.cluster: dict[str, Any] = dict(cluster)

    # ------------------------------------------------------------------ before anything is submitted
    def with_limits(self) -> Backend:
        """This backend with the profile's `auto` limits filled in (e.g. from the scheduler)."""
        return self

    def check_cells(self, configs: Sequence[Mapping[str, Any]], cell_ids: Sequence[str]) -> None:
        """Refuse (BackendError, naming the cell) what this backend cannot run, beyond resources."""
        return None

    @abstractmethod
    def resource_class(self, cell: Mapping[str, Any]) -> ResourceClass:
        """The resources one cell gets here; ResourceError if none fits."""

    # ------------------------------------------------------------------------------------ running
    def cell_env(self) -> dict[str, str]:
        """The environment every cell and worker gets (set by itself, before it trains)."""
        return {STOP_SIGNALS_ENV: ",".join(self.stop_signals)}

    def launch(
        self,
        sweep_dir: Path,
        items: Sequence[tuple[str, ResourceClass]],
        group: str | None,
        hooks: LaunchHooks,
    ) -> None:
        """Start every (cell_id, resource class); `hooks.on_submit` for each as it is queued.

        The template: `submit_cells` does the backend's work; a backend that owns its cells runs
        them to the end there (calling on_done, polling should_stop)."""
        if items:
            self.submit_cells(Path(sweep_dir), list(items), group, hooks)

    @abstractmethod
    def submit_cells(
        self, sweep_dir: Path, items: list[tuple[str, ResourceClass]], group: str | None, hooks: LaunchHooks
    ) -> None:
        """The backend's own submission (see `launch`)."""

    def job_states(self, job_ids: Sequence[str]) -> Mapping[str, JobView]:
        """The scheduler's view of these jobs, in one batched query; {} without a scheduler."""
        return {}

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Stop these jobs (fail_fast); nothing without a scheduler (owned cells stop via hooks)."""
        return None

    def process_alive(self, attempt: Mapping[str, Any]) -> bool:
        """Whether the process of an attempts-log line still runs (backends that own their cells)."""
        return False

    def manifest_job_id(self, raw: str) -> str:
        """The manifest's job id of an attempts-log job id (a rebuilt manifest's submissions)."""
        return raw

    def log_files(self, logs: Path, job_id: str) -> list[Path]:
        """Where the job's stdout/stderr are (a storage error that ended it is looked for there)."""
        return job_log_files(logs, job_id)

    # ------------------------------------------------------------------------------------ for tune
    @abstractmethod
    def submit_workers(
        self,
        study_dir: Path,
        workers: Sequence[EnvCarrier],
        trial_cell: Mapping[str, Any],
        trials_per_worker: int,
    ) -> list[WorkerJob]:
        """Start tuning workers (each runs many trials of `trial_cell`'s size); their jobs."""

    def with_env(self, job: EnvCarrier) -> EnvCarrier:
        """`job` carrying this backend's cell environment."""
        job.env = {**getattr(job, "env", {}), **self.cell_env()}
        return job


def job_log_files(logs: Path, job_id: str) -> list[Path]:
    """submitit's log files of a job: in logs/<job id>/ (SLURM's `%j` folders) or flat in logs/."""
    names = (f"{job_id}_0_log.err", f"{job_id}_0_log.out")
    return [logs / job_id / n for n in names] + [logs / n for n in names]
