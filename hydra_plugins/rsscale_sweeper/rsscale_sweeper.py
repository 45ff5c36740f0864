"""The `rsscale` Hydra sweeper (selected in conf/config.yaml; its config: conf/hydra/sweeper/rsscale.yaml).

Hydra's basic sweeper hands each combination to a launcher as its own job; rsscale's driver is
one job that plans, launches and collects a whole grid, so the basic sweeper ran job #0 and lost
the rest. This sweeper gets every override at once and runs the driver once, on the cells of all
combinations (rsscale.launch.multirun). Imports stay lazy: Hydra imports every plugin module at
start-up, also for runs without `-m`.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class RsscaleSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = dict(params or {})
        self.config = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> Any:
        from hydra.core.utils import run_job

        from rsscale.launch.multirun import expand_multirun

        loader = self.hydra_context.config_loader
        task = _driver_task(lambda: expand_multirun(self.config, arguments, loader))
        # one job in the sweep directory itself, set up as Hydra sets up a run (logging, HydraConfig)
        ret = run_job(task, self.config, "hydra.sweep.dir", None, self.hydra_context)
        _ = ret.return_value  # re-raises what the job raised (Hydra prints it), never a silent exit 0
        return [[ret]]


def _driver_task(expanded: Any) -> Any:
    """The one job of a `-m` sweep: the driver (rsscale.driver.drive) on all its cells; exits with its
    status."""

    def task(cfg: Any) -> None:
        import sys
        from pathlib import Path

        from hydra.core.hydra_config import HydraConfig

        from rsscale.driver import drive

        hc = HydraConfig.get()
        sys.exit(drive(cfg, Path(hc.sweep.dir), list(hc.overrides.task), expanded))

    return task
