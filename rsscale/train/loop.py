"""One training run of the ResNet-RS recipe: the unit every sweep cell, trial and benchmark uses.

nanoGPT-style: one function, top to bottom. Resumes from `run_dir/checkpoint.pt` when present,
writes `run_dir/record.json` (the source of truth) and mirrors it to W&B.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsscale.config import cell_hash, cell_id, validate_cell
from rsscale.launch.supervision import cell_stop_signals
from rsscale.train import distributed as D
from rsscale.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from rsscale.train.compile_policy import decide_compile
from rsscale.train.ema import ModelEma
from rsscale.train.recipe import build_optimizer, lr_at, peak_lr, set_lr
from rsscale.train.record import load_record, new_record, now, provenance, write_record
from rsscale.train.step import TrainStep, time_call
from rsscale.train.wandb_log import WandbRun, new_run_id

log = logging.getLogger("rsscale.train")


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run ends as `diverged`, recorded, not a crash."""


class PreemptRequested(Exception):
    """Raised at a step boundary after the preemption signal, once the checkpoint is on disk."""


class Pruned(Exception):
    """Raised by `on_epoch_end` (a tuner's pruner): the run ends as `pruned`, recorded, not a crash."""


# ---------------------------------------------------------------------------------------------
# Small helpers


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("runtime.device=cuda but no CUDA device is visible")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16/AMX CPUs train 2x faster under bf16 autocast; older ones are slower in bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and "avx512_bf16" in _cpu_flags()
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return ""


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA and on CPUs with native bf16; `auto` falls back to fp32 elsewhere."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" or cpu_has_fast_bf16() else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


@torch.no_grad()
def evaluate(model: nn.Module, stream, amp_dtype, device) -> dict[str, float]:
    """Top-1/top-5 over every sample of an eval stream (summed across DDP ranks)."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in stream:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
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


def measure_latency(cfg: Mapping, in_chans: int, num_classes: int, device, amp_dtype):
    """The paper's speed axis: measured train-step and inference seconds at a fixed batch.

    Runs on a fresh single-process copy of the architecture with synthetic input and the RNG
    forked, so training (and DDP/SyncBN state) is unaffected.
    """
    from rsscale.models import build_model

    rt = cfg["runtime"]
    batch, iters = int(rt["latency_batch"]), int(rt["latency_iters"])
    res = int(cfg["data"]["train_res"])
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        m = build_model(cfg["model"], num_classes=num_classes, in_chans=in_chans).to(device)
        fmt = torch.channels_last if rt["channels_last"] else torch.contiguous_format
        m = m.to(memory_format=fmt)
        opt = torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9)
        step = TrainStep(m, opt, F.cross_entropy, device, amp_dtype)
        x = torch.randn(batch, in_chans, res, res, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, num_classes, (batch,), device=device)
        out = {}
        for name, fn, mode in (
            ("train_step_s", lambda: step(x, y), True),
            ("infer_s", lambda: step.infer(x), False),
        ):
            m.train(mode)
            fn()  # warm-up
            out[name] = time_call(lambda fn=fn: [fn() for _ in range(iters)], device) / iters
    out["latency_batch"] = batch
    return out


class _PreemptFlag:
    """Defers the preemption signal (USR2) to the next step boundary.

    The handler only sets a flag; the loop then writes a consistent checkpoint and hands over to
    the previous handler (submitit's, which requeues the job), or raises PreemptRequested.
    `stop_signals` (SIGTERM in a local cell) do the same but never requeue: the cell stops.
    """

    def __init__(self, signum: int = signal.SIGUSR2, stop_signals: tuple[int, ...] = ()):
        self.signum = signum
        self.stop_signals = tuple(stop_signals)
        self.requested = False
        self.received = None
        self.previous = None
        self.others: dict[int, Any] = {}
        self.frame = None

    def __enter__(self):
        try:
            self.previous = signal.signal(self.signum, self._handler)
            for s in self.stop_signals:
                self.others[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def _handler(self, signum, frame):
        self.requested = True
        self.received = self.received or signum
        self.frame = frame

    def __exit__(self, *exc):
        if self.previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(self.signum, self.previous)
                for s, h in self.others.items():
                    signal.signal(s, h)
        return False

    def hand_over(self) -> None:
        prev = self.previous
        self.__exit__()
        self.previous = None
        if callable(prev) and self.received in (None, self.signum):
            prev(self.signum, self.frame)  # submitit: checkpoint() + requeue + sys.exit
        raise PreemptRequested("preemption signal received; checkpoint saved")


class _Progress:
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


# ---------------------------------------------------------------------------------------------
# The run


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
    validate_cell(cell)
    cfg = copy.deepcopy(dict(cell))
    model_cfg, data_cfg, recipe, rt = cfg["model"], cfg["data"], cfg["recipe"], cfg["runtime"]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    h = cell_hash(cfg)
    cid = cell_id_ or cell_id(cfg, h)

    dist_info = D.init_distributed("cuda" if rt["device"] != "cpu" and torch.cuda.is_available() else "cpu")
    device = pick_device(rt["device"], dist_info.local_rank)
    world = dist_info.world_size
    is_main = dist_info.is_main
    if rt.get("threads"):
        torch.set_num_threads(int(rt["threads"]))
    if rt.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = autocast_dtype(rt["precision"], device)
    seed = int(rt["seed"])
    torch.manual_seed(seed)

    # Data ------------------------------------------------------------------------------------
    from rsscale.data import build_data
    from rsscale.models import build_model, count_params, model_cost

    accum = int(recipe["grad_accum_steps"])
    global_batch = int(recipe["batch_size"])
    micro_batch = global_batch // (world * accum)
    data = build_data(
        data_cfg,
        batch_size=micro_batch,
        eval_batch_size=int(rt["eval_batch_size"]),
        device=device,
        seed=seed,
        rank=dist_info.rank,
        world_size=world,
        channels_last=bool(rt["channels_last"]),
        randaugment_magnitude=data_cfg.get("randaugment_magnitude"),
        bad_image_log=run_dir / UNREADABLE_NAME if data_cfg.get("name") == "imagenet" else None,
        for_minival_only=minival_only,
    )
    micro_per_epoch = data.train.steps_per_epoch
    steps_per_epoch = micro_per_epoch // accum
    if steps_per_epoch < 1:
        raise ValueError(
            f"recipe.batch_size={global_batch} is larger than the training set ({data.train_size} images)"
        )
    epochs = int(recipe["epochs"])
    total_steps = steps_per_epoch * epochs
    if rt.get("max_steps"):
        total_steps = min(total_steps, int(rt["max_steps"]))
    warmup_steps = int(round(float(recipe["warmup_epochs"]) * steps_per_epoch))
    lr_peak = peak_lr(float(recipe["lr_base"]), global_batch)

    # Model, optimiser, EMA ---------------------------------------------------------------------
    model = build_model(model_cfg, num_classes=data.num_classes, in_chans=data.in_chans).to(device)
    if rt["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    sync_bn = world > 1 and bool(rt.get("sync_bn", True))
    if sync_bn and device.type == "cpu":
        # torch's SyncBatchNorm raises on CPU input in training mode: CPU (gloo) runs keep per-rank
        # BatchNorm statistics, so they match one process at the same global batch only approximately.
        log.warning("runtime.sync_bn: SyncBatchNorm needs an accelerator; per-rank BatchNorm on CPU")
        sync_bn = False
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    cost = dict(model_cost(dict(model_cfg), int(data_cfg["train_res"]), data.num_classes, data.in_chans))
    cost["params"] = count_params(model)
    optimizer = build_optimizer(model, recipe, lr_peak, device)
    ema = ModelEma(model, float(recipe["ema_decay"])) if recipe.get("ema_decay") else None
    criterion = nn.CrossEntropyLoss(label_smoothing=float(recipe["label_smoothing"]))

    # Resume ----------------------------------------------------------------------------------
    try:
        record = load_record(run_dir) or new_record(cfg, cid, h)
    except (OSError, ValueError) as e:  # the checkpoint (if any) still holds the run's history
        log.warning("unreadable %s/record.json (%s): a new record, resuming from the checkpoint", run_dir, e)
        record = new_record(cfg, cid, h)
    if record.get("cell_hash") != h:
        raise ValueError(
            f"{run_dir} holds a run of another config (hash {record.get('cell_hash')} != {h}); "
            "use a fresh run directory"
        )
    record["config"] = cfg  # unhashed fields (device, paths, threads) follow the sweep's latest launch
    ckpt = load_checkpoint(run_dir, map_location=device)
    step, epoch, micro_in_epoch = 0, 0, 0
    wandb_id = record["provenance"].get("wandb_run_id") or new_run_id()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        step, epoch, micro_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["micro_in_epoch"]
        wandb_id = ckpt.get("wandb_run_id") or wandb_id
        record["history"] = ckpt.get("history", record["history"])
        set_rng_state(ckpt["rng"])
        log.info("resumed %s at epoch %d step %d", cid, epoch, step)
    else:
        record["history"] = []  # a restart from step 0 (no readable checkpoint) repeats every epoch
    if record["status"] == "completed" and ckpt is not None and step >= total_steps:
        return record
    record.update(status="running", error_class=None, error=None, finished=None)
    record["attempts"] = int(record.get("attempts", 0)) + 1
    record["provenance"] = {
        **provenance(),
        "wandb_run_id": wandb_id,
        "world_size": world,
        "sync_bn": sync_bn,
        "precision": "bf16" if amp_dtype is not None else "fp32",
        "device": str(device),
    }
    record["cost"] = {**record.get("cost", {}), **cost}
    if is_main:
        write_record(run_dir, record)
    wb = WandbRun(
        cfg["logger"], run_id=wandb_id, name=cid, config=cfg, run_dir=run_dir, group=group, enabled=is_main
    )
    if wb.error:
        record["provenance"]["wandb_error"] = wb.error

    fwd_model = model
    train_flops = 3.0 * cost["flops_per_image"] * data.train_size * epochs
    compile_on, compile_why = decide_compile(rt, device, train_flops)
    record["provenance"]["compile"] = {"on": compile_on, "reason": compile_why}
    if compile_on:
        fwd_model = torch.compile(model)
    train_model = fwd_model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        train_model = torch.compile(ddp) if compile_on else ddp
    train_step = TrainStep(train_model, optimizer, criterion, device, amp_dtype, scale=float(accum))

    # Checkpoint closure ------------------------------------------------------------------------
    last_ckpt_time = time.monotonic()

    def checkpoint_now(epoch_acc):
        nonlocal last_ckpt_time
        if is_main:
            save_checkpoint(
                run_dir,
                {
                    "epoch_acc": epoch_acc,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "step": step,
                    "epoch": epoch,
                    "micro_in_epoch": micro_in_epoch,
                    "history": record["history"],
                    "wandb_run_id": wandb_id,
                    "cell_hash": h,
                },
            )
        D.barrier()
        last_ckpt_time = time.monotonic()

    ckpt_minutes = rt.get("checkpoint_every_minutes")
    ckpt_steps = rt.get("checkpoint_every_steps")
    log_every = max(1, int(rt.get("log_every_steps") or 50))
    progress = _Progress(rt.get("progress", "auto"), total_steps, is_main)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_time = float(record["cost"].get("train_time_s", 0.0))
    loss_acc = torch.zeros((), dtype=torch.float64, device=device)  # this rank's epoch loss sum

    def loss_sum() -> float:
        """The epoch's loss sum, averaged over ranks (a collective: every rank calls it together).

        Checkpoints store this value and every rank resumes from it, so all-reducing and dividing
        by `world` stays exact, and with one process it is `loss_acc` itself.
        """
        t = loss_acc.clone()
        D.all_reduce_sum(t)
        return t.item() / world

    try:
        with _PreemptFlag(stop_signals=cell_stop_signals()) as preempt:
            model.train()
            while epoch < epochs and step < total_steps:
                # Per-epoch accumulators live in the checkpoint, so a resumed epoch reports the
                # same mean loss as an uninterrupted one (float64 sums, same order of additions).
                acc = ckpt.get("epoch_acc") if ckpt is not None and ckpt["epoch"] == epoch else None
                loss_acc = torch.tensor(acc["loss_sum"] if acc else 0.0, dtype=torch.float64, device=device)
                loss_n = acc["loss_n"] if acc else 0
                epoch_images = acc["images"] if acc else 0
                images_before = epoch_images  # seen before a resume: not in this process's timer
                ckpt = None
                logged_sum, logged_n = loss_acc.item(), loss_n

                t_epoch = time.perf_counter()
                steps_here = 0
                micro = micro_in_epoch

                for x, y in data.train.batches(epoch, start_step=micro_in_epoch):
                    if micro % accum == 0:
                        set_lr(
                            optimizer,
                            lr_at(
                                step,
                                total_steps=steps_per_epoch * epochs,
                                warmup_steps=warmup_steps,
                                peak=lr_peak,
                                schedule=recipe["lr_schedule"],
                            ),
                        )
                    no_sync = world > 1 and (micro + 1) % accum and hasattr(train_model, "no_sync")
                    with train_model.no_sync() if no_sync else contextlib.nullcontext():
                        loss = train_step.forward_backward(x, y)
                    loss_acc += loss.double()
                    loss_n += 1
                    epoch_images += len(y) * world
                    micro += 1
                    if micro % accum:
                        continue
                    train_step.optimizer_step()
                    if ema is not None:
                        ema.update(model)
                    step += 1
                    steps_here += 1
                    micro_in_epoch = micro
                    if on_step is not None:
                        on_step(step)
                    if rt.get("fail_at_step") and step == int(rt["fail_at_step"]):
                        raise RuntimeError(f"fault injection: runtime.fail_at_step={step}")
                    if step % log_every == 0:
                        total = loss_sum()  # every rank takes the same decision
                        if not math.isfinite(total):
                            raise Diverged(f"loss is not finite at step {step}")
                        wl = (total - logged_sum) / max(1, loss_n - logged_n)
                        logged_sum, logged_n = total, loss_n
                        elapsed = time.perf_counter() - t_epoch
                        ips = (epoch_images - images_before) / max(elapsed, 1e-9)
                        eta = (total_steps - step) * elapsed / max(1, steps_here)
                        progress.update(
                            step,
                            f"epoch {epoch + 1}/{epochs}",
                            {"loss": f"{wl:.4f}", "img/s": f"{ips:.0f}", "eta": f"{eta:.0f}s"},
                        )
                        if is_main:
                            wb.log(
                                {
                                    "train/loss": wl,
                                    "train/lr": optimizer.param_groups[0]["lr"],
                                    "train/images_per_s": ips,
                                },
                                step=step,
                            )
                    if step >= total_steps:
                        break
                    due = (ckpt_steps and step % int(ckpt_steps) == 0) or (
                        ckpt_minutes and time.monotonic() - last_ckpt_time > 60 * float(ckpt_minutes)
                    )
                    preempted, due = D.any_across_ranks(preempt.requested, bool(due))
                    if preempted or due:
                        checkpoint_now({"loss_sum": loss_sum(), "loss_n": loss_n, "images": epoch_images})
                    if preempted:
                        record.update(status="preempted", error_class="preempted")
                        if is_main:
                            write_record(run_dir, record)
                        wb.finish(exit_code=1)
                        preempt.hand_over()
                mean_loss = loss_sum() / max(1, loss_n)
                if not math.isfinite(mean_loss):
                    raise Diverged(f"loss is not finite in epoch {epoch + 1}")
                epoch_s = time.perf_counter() - t_epoch
                train_time += epoch_s
                epoch += 1
                micro_in_epoch = 0
                entry = {
                    "epoch": epoch,
                    "step": step,
                    "train_loss": mean_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "images_per_s": (epoch_images - images_before) / max(epoch_s, 1e-9),
                    "epoch_s": epoch_s,
                }
                if epoch % int(rt.get("eval_every_epochs") or 1) == 0 or epoch == epochs:
                    raw = evaluate(fwd_model, data.minival, amp_dtype, device)
                    entry.update(minival_top1=raw["top1"], minival_top5=raw["top5"])
                    if ema is not None:
                        e = evaluate(ema.module, data.minival, amp_dtype, device)
                        entry.update(minival_top1_ema=e["top1"], minival_top5_ema=e["top5"])
                record["history"].append(entry)
                _check_unreadable(run_dir, data_cfg, data, record)
                record["cost"]["train_time_s"] = train_time
                if is_main:
                    write_record(run_dir, record)
                    wb.log({f"epoch/{k}": v for k, v in entry.items()}, step=step)
                    log.info(
                        "%s epoch %d/%d loss %.4f minival top1 %s (%.0f img/s, %.1fs)",
                        cid,
                        epoch,
                        epochs,
                        mean_loss,
                        _fmt(entry.get("minival_top1")),
                        entry["images_per_s"],
                        epoch_s,
                    )
                if epoch % int(rt.get("checkpoint_every_epochs") or 1) == 0 or epoch == epochs:
                    checkpoint_now(None)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, entry)
                if step >= total_steps:
                    break
            # A signal that came after the last step's check (during the final epoch's evaluation
            # or checkpoint) would be dropped with the handler when this block exits: act on it.
            (preempted,) = D.any_across_ranks(preempt.requested)
            if preempted:
                checkpoint_now(None)
                record.update(status="preempted", error_class="preempted")
                if is_main:
                    write_record(run_dir, record)
                wb.finish(exit_code=1)
                preempt.hand_over()
        progress.close()

        # Final metrics ---------------------------------------------------------------------------
        final: dict[str, Any] = {
            "val_top1": None,
            "val_top5": None,
            "val_top1_ema": None,
            "val_top5_ema": None,
        }
        if data.val is not None:
            raw = evaluate(fwd_model, data.val, amp_dtype, device)
            final.update(val_top1=raw["top1"], val_top5=raw["top5"])
        mv = evaluate(fwd_model, data.minival, amp_dtype, device)
        final.update(minival_top1=mv["top1"], minival_top5=mv["top5"])
        if ema is not None:
            if data.val is not None:
                e = evaluate(ema.module, data.val, amp_dtype, device)
                final.update(val_top1_ema=e["top1"], val_top5_ema=e["top5"])
            emv = evaluate(ema.module, data.minival, amp_dtype, device)
            final.update(minival_top1_ema=emv["top1"], minival_top5_ema=emv["top5"])
        use_ema = ema is not None
        final["top1"] = final["val_top1_ema"] if use_ema else final["val_top1"]
        final["top5"] = final["val_top5_ema"] if use_ema else final["val_top5"]
        key = "minival_top1_ema" if use_ema else "minival_top1"
        final["best_minival_top1"] = max(
            (r[key] for r in record["history"] if r.get(key) is not None), default=None
        )
        if rt.get("measure_latency", True) and is_main:
            record["cost"].update(measure_latency(cfg, data.in_chans, data.num_classes, device, amp_dtype))
        eps = [r["images_per_s"] for r in record["history"]]
        record["cost"]["images_per_s"] = sum(eps) / len(eps) if eps else None
        record["cost"]["peak_mem_bytes"] = (
            torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _rss_peak_bytes()
        )
        record.update(status="completed", final=final, finished=now())
        if is_main:
            write_record(run_dir, record)
            wb.summary({f"final/{k}": v for k, v in final.items() if v is not None})
            wb.summary({f"cost/{k}": v for k, v in record["cost"].items() if isinstance(v, int | float)})
            wb.finish()
            log.info("%s completed: val top1 %s", cid, _fmt(final["top1"]))
        return record
    except Pruned as e:
        record.update(status="pruned", error=str(e) or None, finished=now())
        if is_main:
            write_record(run_dir, record)
        wb.finish()
        log.info("%s pruned after epoch %d", cid, epoch)
        return record
    except Diverged as e:
        record.update(status="diverged", error_class="diverged", error=str(e), finished=now())
        if is_main:
            write_record(run_dir, record)
        wb.finish(exit_code=1)
        log.warning("%s diverged: %s", cid, e)
        return record
    except (PreemptRequested, SystemExit, KeyboardInterrupt):
        if record["status"] != "preempted":
            record.update(status="preempted", error_class="preempted")
            if is_main:
                write_record(run_dir, record)
        wb.finish(exit_code=1)
        raise
    except BaseException as e:
        record.update(
            status="failed",
            error_class=classify_exception(e),
            error=f"{type(e).__name__}: {e}",
            finished=now(),
        )
        if is_main:
            write_record(run_dir, record)
        wb.finish(exit_code=1)
        raise
    finally:
        progress.close()


UNREADABLE_NAME = "unreadable_images.txt"


def _check_unreadable(run_dir: Path, data_cfg: Mapping, data, record: dict) -> None:
    """Unreadable images were skipped (listed in run_dir/unreadable_images.txt); past
    data.max_unreadable_fraction of the tree they are an error, not a silently smaller dataset."""
    path = run_dir / UNREADABLE_NAME
    if not path.exists():
        return
    from rsscale.data.imagenet import unreadable_images

    bad = unreadable_images(path)
    total = max(1, data.train_size + data.minival_size + data.val_size)
    record["data_issues"] = {"unreadable_images": len(bad), "listed_in": UNREADABLE_NAME, "first": bad[:5]}
    limit = float(data_cfg.get("max_unreadable_fraction", 0.001))
    if len(bad) / total > limit:
        raise ValueError(
            f"data.max_unreadable_fraction={limit}: {len(bad)} of {total} images are unreadable "
            f"(listed in {path}); fix or remove them, or raise the limit"
        )
    log.warning("%d unreadable image(s) skipped (listed in %s)", len(bad), path)


def classify_exception(e: BaseException) -> str:
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        return "oom"
    if isinstance(e, torch.cuda.OutOfMemoryError if hasattr(torch.cuda, "OutOfMemoryError") else MemoryError):
        return "oom"
    if isinstance(e, Diverged):
        return "diverged"
    return "code_error"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _rss_peak_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
