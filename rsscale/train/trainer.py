"""The trainer of one run: what it is built from, its position, and one epoch of steps.

`Trainer.build` makes the data, model, optimiser, EMA and LR schedule of a cell (in a fixed
order: the initial weights depend on the RNG draws before them); `train_epoch` runs one epoch
of `TrainStep`s (torchtitan's `train_step -> forward_backward_step`) and hands the step
boundaries to the checkpointer. The trainer is a checkpoint `Stateful`: weights, optimiser, EMA,
the data position and the running sums of an interrupted epoch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from rsscale.config import CellConfig, RecipeConfig, RuntimeConfig
from rsscale.layout import UNREADABLE_NAME
from rsscale.train import distributed as D
from rsscale.train.compile_policy import decide_compile
from rsscale.train.device import RunEnv
from rsscale.train.ema import ModelEma
from rsscale.train.recipe import build_optimizer, lr_at, peak_lr, set_lr
from rsscale.train.recorder import Diverged
from rsscale.train.step import TrainStep

log = logging.getLogger("rsscale.train")


@dataclass(frozen=True)
class Schedule:
    """Step counts and the LR schedule of a run (the LR is a pure function of the step)."""

    accum: int
    steps_per_epoch: int
    epochs: int
    total_steps: int  # runtime.max_steps caps it; the LR schedule still spans every epoch
    warmup_steps: int
    peak: float
    kind: str

    @classmethod
    def of(cls, recipe: RecipeConfig, rt: RuntimeConfig, micro_per_epoch: int, train_size: int) -> Schedule:
        accum, batch = int(recipe.grad_accum_steps), int(recipe.batch_size)
        steps_per_epoch = micro_per_epoch // accum
        if steps_per_epoch < 1:
            raise ValueError(
                f"recipe.batch_size={batch} is larger than the training set ({train_size} images)"
            )
        epochs = int(recipe.epochs)
        total = steps_per_epoch * epochs
        if rt.max_steps:
            total = min(total, int(rt.max_steps))
        warmup = int(round(float(recipe.warmup_epochs) * steps_per_epoch))
        peak = peak_lr(float(recipe.lr_base), batch)
        return cls(accum, steps_per_epoch, epochs, total, warmup, peak, recipe.lr_schedule)

    def lr(self, step: int) -> float:
        return lr_at(
            step,
            total_steps=self.steps_per_epoch * self.epochs,
            warmup_steps=self.warmup_steps,
            peak=self.peak,
            schedule=self.kind,
        )


class EpochStats:
    """An epoch's running loss sum (float64, this rank's, added in step order) and image count.

    They live in the checkpoint, so a resumed epoch reports the same mean loss as an
    uninterrupted one.
    """

    def __init__(self, acc: Mapping[str, Any] | None, device: torch.device, world: int):
        self.loss = torch.tensor(acc["loss_sum"] if acc else 0.0, dtype=torch.float64, device=device)
        self.n = acc["loss_n"] if acc else 0
        self.images = acc["images"] if acc else 0
        self.images_before = self.images  # seen before a resume: not in this process's timer
        self.world = world
        self.logged_sum, self.logged_n = self.loss.item(), self.n
        self.t0 = time.perf_counter()
        self.steps_here = 0

    def add(self, loss: torch.Tensor, images: int) -> None:
        self.loss += loss.double()
        self.n += 1
        self.images += images

    def loss_sum(self) -> float:
        """The epoch's loss sum, averaged over ranks (a collective: every rank calls it together).

        Checkpoints store this value and every rank resumes from it, so all-reducing and dividing
        by `world` stays exact, and with one process it is the local sum itself.
        """
        t = self.loss.clone()
        D.all_reduce_sum(t)
        return t.item() / self.world

    def mean_since_log(self, total: float) -> float:
        """Mean loss since the last log (or the epoch start), from the current `loss_sum()`."""
        mean = (total - self.logged_sum) / max(1, self.n - self.logged_n)
        self.logged_sum, self.logged_n = total, self.n
        return mean

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def images_per_s(self, seconds: float) -> float:
        return (self.images - self.images_before) / max(seconds, 1e-9)

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum(), "loss_n": self.n, "images": self.images}


class Progress:
    """A tqdm bar on a terminal, plain log lines otherwise."""

    def __init__(self, mode: str, total: int, enabled: bool):
        self.bar = None
        self.enabled = enabled and mode != "none"
        use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        if self.enabled and use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)

    def update(self, step: int, desc: str, postfix: Mapping[str, str]):
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_description(desc, refresh=False)
            self.bar.set_postfix(postfix)
        elif self.enabled:
            log.info("%s step %d %s", desc, step, " ".join(f"{k}={v}" for k, v in postfix.items()))

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Trainer:
    """Data, model, optimiser, EMA, schedule and position of a run; `train_epoch` is one epoch."""

    def __init__(self, cfg: CellConfig, env: RunEnv, run_dir: Path, *, minival_only: bool = False):
        """Built in a fixed order (data, model, cost, optimiser, EMA): the RNG draws of each step
        decide the initial weights, and a resumed run replaces them all from the checkpoint.
        `cfg` is the validated cell (`typed_cell`: its data files already checked)."""
        from rsscale.data import build_data
        from rsscale.models import build_model, count_params, model_cost

        self.cfg, self.env, self.run_dir = cfg, env, run_dir
        recipe, rt = cfg.recipe, cfg.runtime
        world, device = env.world, env.device
        self.data = build_data(
            cfg.data,
            batch_size=int(recipe.batch_size) // (world * int(recipe.grad_accum_steps)),
            eval_batch_size=int(rt.eval_batch_size),
            device=device,
            seed=env.seed,
            rank=env.dist.rank,
            world_size=world,
            channels_last=bool(rt.channels_last),
            bad_image_log=run_dir / UNREADABLE_NAME,  # where image trees list unreadable files
            for_minival_only=minival_only,
        )
        self.schedule = Schedule.of(recipe, rt, self.data.train.steps_per_epoch, self.data.train_size)

        model = build_model(cfg.model, num_classes=self.data.num_classes, in_chans=self.data.in_chans).to(
            device
        )
        if rt.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.sync_bn = world > 1 and rt.sync_bn
        if self.sync_bn and device.type == "cpu":
            # torch's SyncBatchNorm raises on CPU input in training mode: CPU (gloo) runs keep per-rank
            # BatchNorm statistics, so they match one process at the same global batch only approximately.
            log.warning("runtime.sync_bn: SyncBatchNorm needs an accelerator; per-rank BatchNorm on CPU")
            self.sync_bn = False
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        d = self.data
        cost = model_cost(cfg.model, int(cfg.data.train_res), d.num_classes, d.in_chans)
        self.cost: dict[str, Any] = dict(cost)
        self.cost["params"] = count_params(model)
        self.cost["train_images"] = d.train_size  # the regime's training-set size (analysis key)
        self.optimizer = build_optimizer(model, recipe, self.schedule.peak, device)
        self.ema = ModelEma(model, float(recipe.ema_decay)) if recipe.ema_decay else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(recipe.label_smoothing))
        train_flops = 3.0 * self.cost["flops_per_image"] * d.train_size * self.schedule.epochs
        self.compile_on, self.compile_why = decide_compile(rt, device, train_flops)
        self.fwd_model: nn.Module = model  # eager or compiled: what evaluates
        self.train_step: TrainStep | None = None
        self.step, self.epoch, self.micro_in_epoch = 0, 0, 0
        self.stats: EpochStats | None = None  # the epoch in progress
        self._resumed_acc: Mapping[str, Any] | None = None

    # -- the checkpoint state ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_acc": self.stats.state_dict() if self.stats is not None else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "micro_in_epoch": self.micro_in_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch, self.micro_in_epoch = state["step"], state["epoch"], state["micro_in_epoch"]
        self._resumed_acc = state.get("epoch_acc")
        log.info("resumed %s at epoch %d step %d", self.run_dir.name, self.epoch, self.step)

    @property
    def done(self) -> bool:
        return self.epoch >= self.schedule.epochs or self.step >= self.schedule.total_steps

    def provenance(self) -> dict[str, Any]:
        return {
            "world_size": self.env.world,
            "ranks": D.rank_placements(self.env.dist, self.env.device),
            "sync_bn": self.sync_bn,
            "precision": "bf16" if self.env.amp_dtype is not None else "fp32",
            "device": str(self.env.device),
            "compile": {"on": self.compile_on, "reason": self.compile_why},
        }

    # -- the step ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Compile and DDP-wrap (after the resume: DDP broadcasts rank 0's weights); build the step."""
        model, env = self.model, self.env
        if self.compile_on:
            self.fwd_model = cast(nn.Module, torch.compile(model))  # an OptimizedModule
        train_model = self.fwd_model
        if env.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
            train_model = cast(nn.Module, torch.compile(ddp)) if self.compile_on else ddp
        self.train_step = TrainStep(
            train_model,
            self.optimizer,
            self.criterion,
            env.device,
            env.amp_dtype,
            scale=float(self.schedule.accum),
        )
        env.reset_peak_memory()
        self.model.train()

    def _forward_backward(self, micro: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One micro-batch. Under accumulation DDP syncs gradients on the last micro-batch only."""
        if micro % self.schedule.accum == 0:
            set_lr(self.optimizer, self.schedule.lr(self.step))
        step = self._train_step()
        no_sync = getattr(step.model, "no_sync", None)  # DDP's
        accumulating = self.env.world > 1 and (micro + 1) % self.schedule.accum
        with no_sync() if accumulating and no_sync is not None else contextlib.nullcontext():
            return step.forward_backward(x, y)

    def _train_step(self) -> TrainStep:
        if self.train_step is None:
            raise RuntimeError("Trainer.prepare() builds the train step before the first epoch")
        return self.train_step

    def _epoch_stats(self) -> EpochStats:
        if self.stats is None:
            raise RuntimeError("no epoch in progress")
        return self.stats

    def _optimizer_step(self) -> None:
        self._train_step().optimizer_step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self._epoch_stats().steps_here += 1

    def _log(self, recorder, progress: Progress) -> None:
        stats, s = self._epoch_stats(), self.schedule
        total = stats.loss_sum()  # every rank takes the same decision
        if not math.isfinite(total):
            raise Diverged(f"loss is not finite at step {self.step}")
        loss = stats.mean_since_log(total)
        elapsed = stats.elapsed()
        ips = stats.images_per_s(elapsed)
        eta = (s.total_steps - self.step) * elapsed / max(1, stats.steps_here)
        progress.update(
            self.step,
            f"epoch {self.epoch + 1}/{s.epochs}",
            {"loss": f"{loss:.4f}", "img/s": f"{ips:.0f}", "eta": f"{eta:.0f}s"},
        )
        lr = self.optimizer.param_groups[0]["lr"]
        recorder.log_step({"train/loss": loss, "train/lr": lr, "train/images_per_s": ips}, step=self.step)

    def train_epoch(
        self, checkpointer, recorder, progress: Progress, on_step: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Train to the end of the epoch (or of runtime.max_steps); return its history entry."""
        s = self.schedule
        log_every = max(1, int(self.cfg.runtime.log_every_steps or RuntimeConfig.log_every_steps))
        fail_at = int(self.cfg.runtime.fail_at_step or 0)
        acc, self._resumed_acc = self._resumed_acc, None
        self.stats = stats = EpochStats(acc, self.env.device, self.env.world)
        micro = self.micro_in_epoch
        for x, y in self.data.train.batches(self.epoch, start_step=self.micro_in_epoch):
            loss = self._forward_backward(micro, x, y)
            stats.add(loss, len(y) * self.env.world)
            micro += 1
            if micro % s.accum:
                continue
            self._optimizer_step()
            self.micro_in_epoch = micro
            if on_step is not None:
                on_step(self.step)
            if fail_at and self.step == fail_at:
                raise RuntimeError(f"fault injection: runtime.fail_at_step={self.step}")
            if self.step % log_every == 0:
                self._log(recorder, progress)
            if self.step >= s.total_steps:
                break
            checkpointer.after_step(self.step)
        mean_loss = stats.loss_sum() / max(1, stats.n)
        if not math.isfinite(mean_loss):
            raise Diverged(f"loss is not finite in epoch {self.epoch + 1}")
        epoch_s = stats.elapsed()
        self.epoch += 1
        self.micro_in_epoch = 0
        self.stats = None
        return {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": mean_loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": stats.images_per_s(epoch_s),
            "epoch_s": epoch_s,
        }

    def check_data(self, record: dict) -> None:
        """Unreadable images were skipped (listed in run_dir/unreadable_images.txt); past
        data.max_unreadable_fraction of the tree they are an error, not a silently smaller dataset."""
        path = self.run_dir / UNREADABLE_NAME
        if not path.exists():
            return
        from rsscale.data.imagenet import unreadable_images

        bad = unreadable_images(path)
        d = self.data
        total = max(1, d.train_size + d.minival_size + d.val_size)
        record["data_issues"] = {
            "unreadable_images": len(bad),
            "listed_in": UNREADABLE_NAME,
            "first": bad[:5],
        }
        limit = float(self.cfg.data.max_unreadable_fraction)
        if len(bad) / total > limit:
            raise ValueError(
                f"data.max_unreadable_fraction={limit}: {len(bad)} of {total} images are unreadable "
                f"(listed in {path}); fix or remove them, or raise the limit"
            )
        log.warning("%d unreadable image(s) skipped (listed in %s)", len(bad), path)
