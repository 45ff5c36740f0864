"""Evaluation of a run: minival after epochs, val (and minival) at the end, raw and EMA weights,
and the measured speed (train-step and inference latency) the study plots against accuracy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsscale.config import CellConfig
from rsscale.train import distributed as D
from rsscale.train.device import RunEnv
from rsscale.train.step import TrainStep, autocast, time_call


@torch.no_grad()
def evaluate(model: nn.Module, stream, amp_dtype, device) -> dict[str, float | None]:
    """Top-1/top-5 over every sample of an eval stream (summed across DDP ranks)."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=device)
    ctx = autocast(device, amp_dtype)
    for x, y in stream:
        with ctx:
            logits = model(x)
        k = min(5, logits.shape[1])
        top = logits.float().topk(k, dim=1).indices
        hit = top.eq(y[:, None])
        stats += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), torch.tensor(len(y), device=device)])
    D.all_reduce_sum(stats)
    model.train(was_training)
    n = stats[2].item()
    if n == 0:  # no minival (data.minival_fraction=null): missing, never 0.0
        return {"top1": None, "top5": None}
    return {"top1": stats[0].item() / n, "top5": stats[1].item() / n}


def measure_latency(cfg: CellConfig, in_chans: int, num_classes: int, device, amp_dtype) -> dict[str, Any]:
    """The paper's speed axis: measured train-step and inference seconds at a fixed batch.

    Runs on a fresh single-process copy of the architecture with synthetic input and the RNG
    forked, so training (and DDP/SyncBN state) is unaffected. The step is the loop's `TrainStep`.
    """
    from rsscale.models import build_model

    rt = cfg.runtime
    batch, iters = int(rt.latency_batch), int(rt.latency_iters)
    res = int(cfg.data.train_res)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        m = build_model(cfg.model, num_classes=num_classes, in_chans=in_chans).to(device)
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        m = m.to(memory_format=fmt)
        opt = torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9)
        step = TrainStep(m, opt, F.cross_entropy, device, amp_dtype)
        x = torch.randn(batch, in_chans, res, res, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, num_classes, (batch,), device=device)
        out: dict[str, Any] = {}
        calls: tuple[tuple[str, Callable[[], torch.Tensor], bool], ...] = (
            ("train_step_s", lambda: step(x, y), True),
            ("infer_s", lambda: step.infer(x), False),
        )
        for name, fn, mode in calls:
            m.train(mode)
            fn()  # warm-up
            out[name] = time_call(_repeat(fn, iters), device) / iters
    out["latency_batch"] = batch
    return out


def _repeat(fn: Callable[[], object], n: int) -> Callable[[], None]:
    def calls() -> None:
        for _ in range(n):
            fn()

    return calls


class Evaluator:
    """What a run evaluates, and when: minival every runtime.eval_every_epochs (and after the
    last epoch), val + minival + a clean training subset (the generalisation gap) at the end;
    each with the EMA weights too when EMA is on (the gap: the headline weights only)."""

    def __init__(self, cfg: CellConfig, env: RunEnv, data, model: nn.Module, ema=None):
        self.cfg, self.env, self.data, self.model, self.ema = cfg, env, data, model, ema
        self.every = int(cfg.runtime.eval_every_epochs or 1)
        self.epochs = int(cfg.recipe.epochs)

    def _eval(self, model: nn.Module, stream, prefix: str, suffix: str = "") -> dict[str, Any]:
        m = evaluate(model, stream, self.env.amp_dtype, self.env.device)
        return {f"{prefix}_top1{suffix}": m["top1"], f"{prefix}_top5{suffix}": m["top5"]}

    def _both(self, stream, prefix: str) -> dict[str, Any]:
        out = self._eval(self.model, stream, prefix)
        if self.ema is not None:
            out.update(self._eval(self.ema.module, stream, prefix, "_ema"))
        return out

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's minival metrics for its history entry ({} when this epoch is not evaluated)."""
        if epoch % self.every == 0 or epoch == self.epochs:
            return self._both(self.data.minival, "minival")
        return {}

    def final(self, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The record's `final`: val (None when not loaded, as in tuning trials) and minival,
        the headline top1/top5 (EMA weights if EMA is on) and the best minival top-1 of the run."""
        final: dict[str, Any] = {
            "val_top1": None,
            "val_top5": None,
            "val_top1_ema": None,
            "val_top5_ema": None,
        }
        if self.data.val is not None:
            final.update(self._eval(self.model, self.data.val, "val"))
        final.update(self._eval(self.model, self.data.minival, "minival"))
        if self.ema is not None:
            if self.data.val is not None:
                final.update(self._eval(self.ema.module, self.data.val, "val", "_ema"))
            final.update(self._eval(self.ema.module, self.data.minival, "minival", "_ema"))
        use_ema = self.ema is not None
        final["top1"] = final["val_top1_ema"] if use_ema else final["val_top1"]
        final["top5"] = final["val_top5_ema"] if use_ema else final["val_top5"]
        key = "minival_top1_ema" if use_ema else "minival_top1"
        final["best_minival_top1"] = max((r[key] for r in history if r.get(key) is not None), default=None)
        final.update(self._gap(final[key]))
        final["minival_every_epochs"] = self.every  # records say how often minival ran
        final["val_images"] = self.data.val.num_samples if self.data.val is not None else 0
        return final

    def _gap(self, minival_top1: float | None) -> dict[str, Any]:
        """The regime, measured: top-1 of the headline weights on a fixed, clean training subset
        the size of minival, and that minus minival top-1 (large: the run over-fits)."""
        stream = getattr(self.data, "train_eval", None)
        if stream is None:  # no minival, so no subset of its size and no gap
            return {"train_top1": None, "generalization_gap": None, "train_eval_images": 0}
        model = self.ema.module if self.ema is not None else self.model
        top1 = evaluate(model, stream, self.env.amp_dtype, self.env.device)["top1"]
        gap = None if top1 is None or minival_top1 is None else top1 - minival_top1
        return {"train_top1": top1, "generalization_gap": gap, "train_eval_images": stream.num_samples}

    def cost(self, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The measured part of the record's `cost`: latency (main rank), throughput, peak memory."""
        out: dict[str, Any] = {}
        if self.cfg.runtime.measure_latency and self.env.is_main:
            out.update(
                measure_latency(
                    self.cfg, self.data.in_chans, self.data.num_classes, self.env.device, self.env.amp_dtype
                )
            )
        eps = [r["images_per_s"] for r in history]
        out["images_per_s"] = sum(eps) / len(eps) if eps else None
        out["peak_mem_bytes"] = self.env.peak_mem_bytes()
        return out
