"""One training run of the ResNet-RS recipe: the unit every sweep cell, trial and benchmark uses.

`train()` is a list of components, after torchtitan's `Trainer.train`: the `Trainer` (data,
model, one epoch of `TrainStep`s), the `Checkpointer` (cadence, resume, preemption hand-over),
the `Evaluator` (minival/val/EMA, latency) and the `RunRecorder` (status, record.json, W&B).
Resumes from `run_dir/checkpoint.pt` when present; `run_dir/record.json` is the source of truth.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rsscale.config import cell_hash, cell_id, typed_cell
from rsscale.layout import CellLayout
from rsscale.progress import ProgressFile
from rsscale.train.checkpoint import Checkpointer, PreemptRequested
from rsscale.train.device import autocast_dtype, cpu_has_fast_bf16, pick_device, setup_runtime
from rsscale.train.evaluate import Evaluator, evaluate, measure_latency
from rsscale.train.recorder import Diverged, Pruned, RunRecorder, classify_exception
from rsscale.train.stop_signals import cell_stop_signals
from rsscale.train.trainer import UNREADABLE_NAME, Progress, Trainer

__all__ = [
    "UNREADABLE_NAME",
    "Diverged",
    "PreemptRequested",
    "Pruned",
    "autocast_dtype",
    "classify_exception",
    "cpu_has_fast_bf16",
    "evaluate",
    "measure_latency",
    "pick_device",
    "train",
]


def train(
    cell: Mapping[str, Any],
    run_dir: str | os.PathLike,
    *,
    cell_id_: str | None = None,
    group: str | None = None,
    on_step: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    minival_only: bool = False,
) -> dict[str, Any]:
    """Train one cell to completion (or divergence) in `run_dir`; return the final run record.

    Resumes from run_dir/checkpoint.pt if present. Status `diverged` is returned, not raised.
    Exceptions propagate after the record is marked `failed` (the runner classifies them).
    `on_step(global_step)` is a test hook called after every optimiser step.
    `on_epoch_end(epoch, history_entry)` runs after each epoch's record and checkpoint are written;
    raising `Pruned` there ends the run as status `pruned` (the tuner's pruning). `minival_only`
    never loads the val set (tuning trials must not see it): `final` then holds minival metrics only.
    """
    typed = typed_cell(cell)  # every check before anything runs (data files: once per run); what train/ reads
    cfg = copy.deepcopy(dict(cell))  # the plain dict: the record's `config`, the hash and W&B's config
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    h = cell_hash(cfg)
    env = setup_runtime(typed.runtime)
    trainer = Trainer(typed, env, run_dir, minival_only=minival_only)
    recorder = RunRecorder.load(run_dir, cfg, cell_id_ or cell_id(cfg, h), h, is_main=env.is_main)
    checkpointer = Checkpointer(
        run_dir,
        typed.runtime,
        states=(trainer, recorder),
        is_main=env.is_main,
        stop_signals=cell_stop_signals(),
    )
    resumed = checkpointer.resume(map_location=env.device)
    if not resumed:
        recorder.restart()  # no readable checkpoint: the run repeats every epoch
    elif recorder.record["status"] == "completed" and trainer.step >= trainer.schedule.total_steps:
        return recorder.record  # a completed run directory is a no-op
    recorder.start(
        provenance_extra=trainer.provenance(),
        cost=trainer.cost,
        logger_cfg=typed.logger,
        config=cfg,
        group=group,
    )
    epochs = trainer.schedule.epochs
    with recorder:  # the exception that ends the run -> its status (recorder.ENDINGS)
        trainer.prepare()
        evaluator = Evaluator(typed, env, trainer.data, trainer.fwd_model, trainer.ema)
        progress = Progress(typed.runtime.progress, trainer.schedule.total_steps, env.is_main)
        pfile = ProgressFile(
            CellLayout(run_dir).progress,
            steps_total=trainer.schedule.total_steps,
            epochs=epochs,
            images_per_step=int(typed.recipe.batch_size),
            enabled=env.is_main,
        )
        pfile.start(trainer.step, trainer.epoch)

        def step_hook(step: int) -> None:  # the driver's view of the cell, then the caller's hook
            pfile.tick(step, trainer.epoch)
            if on_step is not None:
                on_step(step)

        with progress, checkpointer.watch_preemption(on_preempt=lambda: recorder.finish("preempted")):
            while not trainer.done:
                entry = trainer.train_epoch(checkpointer, recorder, progress, step_hook)
                pfile.phase(trainer.step, trainer.epoch - 1, "evaluating")
                entry.update(evaluator.after_epoch(trainer.epoch))
                trainer.check_data(recorder.record)
                recorder.end_epoch(entry, epochs=epochs)
                checkpointer.after_epoch(trainer.epoch, epochs)
                if on_epoch_end is not None:
                    on_epoch_end(trainer.epoch, entry)
            checkpointer.after_training()
        recorder.finish(
            "completed", final=evaluator.final(recorder.history), cost=evaluator.cost(recorder.history)
        )
        pfile.phase(trainer.step, trainer.epoch, "completed")
    return recorder.record
