"""The run's one owner of its record: status changes, history, record.json writes and W&B.

A run record moves `running -> completed | failed | diverged | preempted | pruned` once per
attempt, always through `RunRecorder.finish`; used as a context manager the recorder maps the
exception that ends a run to its status (the table `ENDINGS`), so no other code writes a status.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rsscale.config import LoggerConfig
from rsscale.io import is_storage_error
from rsscale.train.checkpoint import PreemptRequested
from rsscale.train.record_file import load_record, new_record, now, provenance, write_record
from rsscale.train.wandb_log import WandbRun, new_run_id

log = logging.getLogger("rsscale.train")


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run ends as `diverged`, recorded, not a crash."""


class Pruned(Exception):
    """Raised by `on_epoch_end` (a tuner's pruner): the run ends as `pruned`, recorded, not a crash."""


def classify_exception(e: BaseException) -> str:
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        return "oom"
    if isinstance(e, torch.cuda.OutOfMemoryError if hasattr(torch.cuda, "OutOfMemoryError") else MemoryError):
        return "oom"
    if isinstance(e, Diverged):
        return "diverged"
    if is_storage_error(e):
        return "storage"
    return "code_error"


# The exception that ends a run -> (status, whether train() returns the record instead of raising).
ENDINGS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str, bool], ...] = (
    (Pruned, "pruned", True),
    (Diverged, "diverged", True),
    ((PreemptRequested, SystemExit, KeyboardInterrupt), "preempted", False),
    (BaseException, "failed", False),
)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


class RunRecorder:
    """Holds the run record in memory; writes it (main rank only) at every change.

    Also a checkpoint `Stateful`: the history and the W&B run id travel in the checkpoint, so a
    resumed run reports the epochs of the checkpoint it resumed from, in the same W&B run.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        record: dict[str, Any],
        *,
        name: str | None = None,
        is_main: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.record = record
        self.name = name or record["cell_id"]  # the W&B run name and the log lines' prefix
        self.is_main = is_main
        self.wandb_id: str = record["provenance"].get("wandb_run_id") or new_run_id()
        self.wb: WandbRun | None = None
        self.ended = False

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike, cfg: dict, cell_id: str, cell_hash: str, *, is_main: bool = True
    ) -> RunRecorder:
        """The record in `run_dir` (a new one if absent or unreadable); refuses another config's."""
        try:
            record = load_record(run_dir) or new_record(cfg, cell_id, cell_hash)
        except (OSError, ValueError) as e:  # the checkpoint (if any) still holds the run's history
            log.warning(
                "unreadable %s/record.json (%s): a new record, resuming from the checkpoint", run_dir, e
            )
            record = new_record(cfg, cell_id, cell_hash)
        if record.get("cell_hash") != cell_hash:
            raise ValueError(
                f"{run_dir} holds a run of another config (hash {record.get('cell_hash')} != {cell_hash}); "
                "use a fresh run directory"
            )
        record["config"] = cfg  # unhashed fields (device, paths, threads) follow the sweep's latest launch
        return cls(run_dir, record, name=cell_id, is_main=is_main)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.record["history"]

    # -- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "wandb_run_id": self.wandb_id, "cell_hash": self.record["cell_hash"]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.wandb_id = state.get("wandb_run_id") or self.wandb_id
        self.record["history"] = state.get("history", self.history)

    def restart(self) -> None:
        """No readable checkpoint: the run starts from step 0 and repeats every epoch."""
        self.record["history"] = []

    # -- the attempt -----------------------------------------------------------------------------
    def start(
        self,
        *,
        provenance_extra: Mapping[str, Any],
        cost: Mapping[str, Any],
        logger_cfg: LoggerConfig,
        config: Mapping[str, Any],
        group: str | None = None,
    ) -> None:
        """Mark the attempt `running` (written at once), then open the W&B run."""
        r = self.record
        r.update(status="running", error_class=None, error=None, finished=None)
        r["attempts"] = int(r.get("attempts", 0)) + 1
        r["provenance"] = {**provenance(), "wandb_run_id": self.wandb_id, **provenance_extra}
        r["cost"] = {**r.get("cost", {}), **cost}
        self.write()
        self.wb = WandbRun(
            logger_cfg,
            run_id=self.wandb_id,
            name=self.name,
            # the cell's identity rides along: a W&B row and the sweep directory's row are one cell
            config={**config, "cell_id": r["cell_id"], "cell_hash": r["cell_hash"]},
            run_dir=self.run_dir,
            group=group,
            enabled=self.is_main,
        )
        if self.wb.error:
            r["provenance"]["wandb_error"] = self.wb.error

    def write(self) -> None:
        if self.is_main:
            write_record(self.run_dir, self.record)

    def log_step(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.is_main and self.wb is not None:
            self.wb.log(metrics, step=step)

    def end_epoch(self, entry: dict[str, Any], *, epochs: int) -> None:
        """Append the epoch's history entry, count its time, write the record, mirror to W&B."""
        self.history.append(entry)
        cost = self.record["cost"]
        cost["train_time_s"] = float(cost.get("train_time_s", 0.0)) + entry["epoch_s"]
        self.write()
        self.log_step({f"epoch/{k}": v for k, v in entry.items()}, step=entry["step"])
        if self.is_main:
            log.info(
                "%s epoch %d/%d loss %.4f minival top1 %s (%.0f img/s, %.1fs)",
                self.name,
                entry["epoch"],
                epochs,
                entry["train_loss"],
                _fmt(entry.get("minival_top1")),
                entry["images_per_s"],
                entry["epoch_s"],
            )

    # -- the end ---------------------------------------------------------------------------------
    def finish(
        self,
        status: str,
        *,
        error: BaseException | None = None,
        final: Mapping[str, Any] | None = None,
        cost: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End the attempt with `status`: the record written, W&B finished. Only the first call of
        an attempt counts (a preemption is recorded before the hand-over, which then raises)."""
        if self.ended:
            return self.record
        r = self.record
        r["status"] = status
        if status == "failed":
            cls = classify_exception(error) if error is not None else "code_error"  # what None classifies as
            r.update(error_class=cls, error=f"{type(error).__name__}: {error}")
        elif status == "diverged":
            r.update(error_class="diverged", error=str(error))
        elif status == "preempted":
            r["error_class"] = "preempted"
        elif status == "pruned":
            r["error"] = str(error) or None
        if final is not None:
            r["final"] = dict(final)
        r["cost"].update(cost or {})
        if status != "preempted":  # a preempted run is not finished: it resumes
            r["finished"] = now()
        self.write()
        self.ended = True
        if self.wb is not None:
            if status == "completed" and self.is_main:
                final = {f"final/{k}": v for k, v in r["final"].items() if v is not None}
                self.wb.summary({"cell_id": r["cell_id"], "cell_hash": r["cell_hash"], **final})
                self.wb.summary({f"cost/{k}": v for k, v in r["cost"].items() if isinstance(v, int | float)})
            self.wb.finish(exit_code=0 if status in ("completed", "pruned") else 1)
        self._log_end(status)
        return r

    def _log_end(self, status: str) -> None:
        r = self.record
        if status == "completed" and self.is_main:
            log.info("%s completed: val top1 %s", self.name, _fmt(r["final"].get("top1")))
        elif status == "pruned":
            log.info("%s pruned after epoch %d", self.name, r["history"][-1]["epoch"] if r["history"] else 0)
        elif status == "diverged":
            log.warning("%s diverged: %s", self.name, r["error"])

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, typ, exc, tb) -> bool:
        """Map the exception that ends the run to its status; True (swallow) for the statuses
        that are results (pruned, diverged), False (re-raise) for the others."""
        if exc is None:
            return False
        for types, status, swallow in ENDINGS:
            if isinstance(exc, types):
                self.finish(status, error=exc)
                return swallow
        return False
