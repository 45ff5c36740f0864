"""The driver's own settings (`sweep.*` in conf/config.yaml), read once and typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SweepError(RuntimeError):
    """A sweep that cannot run as asked; the message is the one line the user sees."""


@dataclass(frozen=True)
class DriverSettings:
    dry_run: bool = False  # expand, validate and print the plan; submit nothing
    detach: bool = False  # return once the cells are queued (or a detached driver runs them)
    analyze: bool = True  # write the report at the end
    fail_fast: bool = False  # stop the remaining cells at the first failure
    poll_s: float = 2.0  # seconds between job-state polls while waiting
    progress: str = "auto"  # the live view's mode (rsscale.launch.live.MODES)
    progress_every_s: float = 30.0
    retry: Mapping[str, int] = field(default_factory=dict)  # re-submissions allowed per error class

    @classmethod
    def from_sweep(cls, sweep: Mapping[str, Any]) -> DriverSettings:
        """From the resolved `sweep` config group."""
        return cls(
            dry_run=bool(sweep.get("dry_run", False)),
            detach=bool(sweep.get("detach", False)),
            analyze=bool(sweep.get("analyze", True)),
            fail_fast=bool(sweep.get("fail_fast", False)),
            poll_s=float(sweep.get("poll_s", 2.0)),
            progress=str(sweep.get("progress", "auto")),
            progress_every_s=float(sweep.get("progress_every_s", 30.0)),
            retry={str(k): int(v) for k, v in (sweep.get("retry") or {}).items()},
        )
