"""Where cells run: the `Backend` seam, its registry, and the local and SLURM backends.

Under launch/ because the backends are built of launch's parts (the cell runner, resource classes,
supervision, the batched SLURM queries) and launch's cell states read job states through them; a
package of its own would make the two import each other.
"""

from rsscale.launch.backends.base import Backend, BackendError, JobView, LaunchHooks, WorkerJob, job_log_files
from rsscale.launch.backends.local import LocalBackend, local_executor
from rsscale.launch.backends.registry import backend_for, backend_name, backend_named, register, registered
from rsscale.launch.backends.slurm import SlurmBackend

register("local", LocalBackend)
register("slurm", SlurmBackend)

__all__ = [
    "Backend",
    "BackendError",
    "JobView",
    "LaunchHooks",
    "LocalBackend",
    "SlurmBackend",
    "WorkerJob",
    "backend_for",
    "backend_name",
    "backend_named",
    "job_log_files",
    "local_executor",
    "register",
    "registered",
]
