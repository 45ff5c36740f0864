"""Weights & Biases mirror of a run. The run record is the source of truth; W&B is the dashboard.

A requeued run continues the same W&B run: the id lives in the checkpoint and the record, and the
run is opened with resume="allow". Without an API key, `auto` logs offline for `wandb sync` later.
A W&B failure never fails training: it is logged and recorded.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from rsscale.config import LOGGER_MODES as MODES  # one list of modes: the logger schema's
from rsscale.config import LoggerConfig

log = logging.getLogger(__name__)


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"logger.mode={mode!r}: allowed {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def new_run_id() -> str:
    import secrets

    return secrets.token_hex(4)


class WandbRun:
    """Thin wrapper: no-ops when disabled or when wandb could not start."""

    def __init__(
        self,
        logger_cfg: LoggerConfig,
        *,
        run_id: str,
        name: str,
        config: Mapping[str, Any],
        run_dir: Path,
        group: str | None = None,
        enabled: bool = True,
    ):
        self.run = None
        self.error: str | None = None
        self.mode = resolve_mode(logger_cfg.mode)
        if not enabled or self.mode == "disabled":
            return
        try:
            import wandb

            self.run = wandb.init(
                project=logger_cfg.project or LoggerConfig.project,
                entity=logger_cfg.entity,
                group=logger_cfg.group or group,
                tags=list(logger_cfg.tags or []),
                name=name,
                id=run_id,
                resume="allow",
                mode=cast(Literal["online", "offline", "disabled"], self.mode),  # resolve_mode's
                dir=str(run_dir),
                config=dict(config),
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
            )
        except Exception as e:  # noqa: BLE001 - W&B must never take training down
            self.error = f"{type(e).__name__}: {e}"
            log.warning("W&B disabled for this run: %s", self.error)
            self.run = None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            try:
                self.run.log(dict(metrics), step=step)
            except Exception as e:  # noqa: BLE001
                log.warning("W&B log failed: %s", e)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        if self.run is not None:
            try:
                self.run.summary.update(dict(metrics))
            except Exception as e:  # noqa: BLE001
                log.warning("W&B summary failed: %s", e)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            try:
                self.run.finish(exit_code=exit_code)
            except Exception as e:  # noqa: BLE001
                log.warning("W&B finish failed: %s", e)
            self.run = None
