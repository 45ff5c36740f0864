"""The sweep driver: plan, launch waves, wait, collect, report (docs/architecture.md).

`python -m rsscale.sweep` and the Hydra sweeper (hydra_plugins/rsscale_sweeper) call `drive` /
`run_sweep`; a driver that launches several waves calls `plan` and `run_wave` itself.
"""

from rsscale.driver.plan import Plan, out_of_retries_lines, plan, refresh_configs, resource_classes
from rsscale.driver.report import write_sweep_report
from rsscale.driver.run import detach_driver, drive, run_sweep, storage_message
from rsscale.driver.settings import DriverSettings, SweepError
from rsscale.driver.wave import WaveResult, collect, done_line, run_wave, submit, sweep_view, wait_for

__all__ = [
    "DriverSettings",
    "Plan",
    "SweepError",
    "WaveResult",
    "collect",
    "detach_driver",
    "done_line",
    "drive",
    "out_of_retries_lines",
    "plan",
    "refresh_configs",
    "resource_classes",
    "run_sweep",
    "run_wave",
    "storage_message",
    "submit",
    "sweep_view",
    "wait_for",
    "write_sweep_report",
]
