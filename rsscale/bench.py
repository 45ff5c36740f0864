# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this in the entry point's module)
"""`python -m rsscale.bench [OVERRIDES] [options]`: training speed of one cell, against timm.

    python -m rsscale.bench model=resnet_rs model.depth=50 data=synthetic data.train_res=160 --batch 32
    python -m rsscale.bench                        # the embedded default cell on the real data path
    python -m rsscale.bench --compile default --steps 20 --json bench.json

The cell is the usual config (Hydra overrides). In one process, step by step and alternating
which model goes first, it times rsscale's train step (`rsscale.train.step.TrainStep`, the
loop's own) and timm's twin of the same architecture (`resnetrsNN` at width 1 with the released
stem, else timm's `ResNet` built to the same shape) under timm's usual settings (its SGD, nesterov,
`nn.CrossEntropyLoss`) at the same batch, precision and memory format. A shared machine's load
then slows both alike, so the ratio holds where absolute figures drift. It also times inference,
the real data path (the input stream alone and data + step, as the loop runs them) and reports
peak memory. Prints a table and the ratio rsscale/timm (>1: rsscale is faster); `--json` writes
the figures with hardware and versions. A measurement, never a test of speed.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsscale.cli import parse_args
from rsscale.train.step import TrainStep, sync, time_call

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
TIMM_RESNETRS = (50, 101, 152, 200, 270, 350, 420)


def timm_twin(model: nn.Module, model_cfg: Mapping[str, Any]) -> tuple[nn.Module | None, str]:
    """timm's model of the same architecture as `model` (a ResNetRS), and how it was built.

    Returns (None, reason) where timm has no such shape (the `paper` stem, which downsamples in c2).
    """
    from timm.layers import get_attn
    from timm.models.resnet import Bottleneck, ResNet

    stem = model_cfg["stem"]
    if stem == "paper":
        return None, "timm has no stem that downsamples in c2 (model.stem=paper)"
    se = float(model_cfg.get("se_ratio") or 0.0)
    block_args = {"attn_layer": partial(get_attn("se"), rd_ratio=se)} if se else {}
    kwargs = dict(
        num_classes=model.num_classes,
        in_chans=model.in_chans,
        stem_width=model.stem_widths[0],
        stem_type="deep",
        replace_stem_pool=stem == "released",
        avg_down=bool(model_cfg.get("resnet_d", True)),
        drop_rate=float(model_cfg.get("dropout") or 0.0),
        drop_path_rate=float(model_cfg.get("drop_path_rate") or 0.0),
        block_args=block_args,
    )
    depth = model_cfg.get("depth")
    if (
        stem == "released"
        and float(model.width) == 1.0
        and not model_cfg.get("blocks")
        and depth in TIMM_RESNETRS
        and se == 0.25
    ):
        import timm

        twin, how = timm.create_model(f"resnetrs{depth}", **kwargs), f"timm.create_model('resnetrs{depth}')"
    else:
        twin = ResNet(Bottleneck, list(model.blocks_per_stage), channels=tuple(model.stage_widths), **kwargs)
        how = "timm.models.resnet.ResNet(Bottleneck, deep stem, avg_down, SE) of the same shape"
        if stem == "small":  # stride-1 deep stem and no max-pool: c2 runs at the input resolution
            twin.conv1[0].stride = (1, 1)
            twin.maxpool = nn.Identity()
            how += ", stride-1 stem without max-pool"
    n_twin, n_ours = sum(p.numel() for p in twin.parameters()), sum(p.numel() for p in model.parameters())
    if n_twin != n_ours:
        how += f" (NOT the same shape: {n_twin:,} parameters vs rsscale's {n_ours:,})"
    return twin, how


def timm_step(model: nn.Module, recipe: Mapping, lr: float, device, amp_dtype) -> TrainStep:
    """timm train.py's defaults for this recipe: its SGD (nesterov momentum), plain cross-entropy."""
    from timm.optim import create_optimizer_v2

    opt = create_optimizer_v2(
        model, "sgd", lr=lr, weight_decay=float(recipe["weight_decay"]), momentum=float(recipe["momentum"])
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=float(recipe["label_smoothing"]))
    return TrainStep(model, opt, criterion, device, amp_dtype)


def train_step_for(
    name: str, m: nn.Module, a, recipe: Mapping, lr: float, device, fmt, amp_dtype
) -> TrainStep:
    """rsscale's step (its fused SGD and loss, as the loop builds them) or timm's, on the device."""
    from rsscale.config import validate_recipe
    from rsscale.train.recipe import build_optimizer

    m = m.to(device, memory_format=fmt).train()
    if name == "timm":
        st = timm_step(m, recipe, lr, device, amp_dtype)
    else:
        crit = nn.CrossEntropyLoss(label_smoothing=float(recipe["label_smoothing"]))
        st = TrainStep(m, build_optimizer(m, validate_recipe(recipe), lr, device), crit, device, amp_dtype)
    if a.compile != "off" and name != "rsscale-eager":
        st.model = torch.compile(m, mode=None if a.compile == "default" else a.compile)
    return st


def summarize(times: list[float], batch: int) -> dict[str, float]:
    qs = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    med = statistics.median(times)
    return {
        "median_s": med,
        "p10_s": qs[0],
        "p90_s": qs[-1],
        "images_per_s": batch / med,
        "n": len(times),
    }


def interleaved(fns: Mapping[str, Callable[[], object]], steps: int, device) -> dict[str, list[float]]:
    """Seconds per call of each fn, alternating the order every round so that drift hits all alike."""
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for i in range(steps):
        for k in names if i % 2 == 0 else reversed(names):
            out[k].append(time_call(fns[k], device))
    return out


def hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(
            gpu=p.name, gpu_mem_gb=round(p.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count()
        )
    return info


def versions() -> dict[str, str]:
    import torchvision

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    try:
        import timm

        out["timm"] = timm.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_mem_bytes": int(torch.cuda.max_memory_allocated(device)), "kind": "cuda allocated"}
    return {
        "peak_mem_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
        "kind": "process RSS",
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m rsscale.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the cell, e.g. model.depth=50")
    ap.add_argument("--batch", type=int, help="batch size (default: the recipe's)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="default: runtime.precision")
    ap.add_argument("--memory-format", choices=("channels_last", "contiguous"), help="default: runtime's")
    ap.add_argument(
        "--compile", choices=COMPILE_MODES, default="off", help="torch.compile mode for both models"
    )
    ap.add_argument(
        "--data", choices=("synthetic", "real", "both"), default="both", help="input for the step"
    )
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model (after warm-up)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-timm", action="store_true", help="time rsscale alone")
    ap.add_argument("--json", type=Path, help="write the report here")
    a = parse_args(ap, argv)
    for name in ("batch", "steps", "threads"):
        v = getattr(a, name)
        if v is not None and v < 1:
            ap.error(f"--{name} must be >= 1, got {v}")
    if a.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {a.warmup}")
    return a


def run(a: argparse.Namespace) -> dict[str, Any]:
    from rsscale.config import cell_config, compose, validate_cell
    from rsscale.data import build_data
    from rsscale.models import build_model, model_cost
    from rsscale.train.loop import autocast_dtype, pick_device
    from rsscale.train.recipe import peak_lr

    cell = cell_config(compose(a.overrides))
    rt, recipe = cell["runtime"], cell["recipe"]
    if a.batch:
        recipe["batch_size"] = a.batch
    if a.precision:
        rt["precision"] = a.precision
    if a.memory_format:
        rt["channels_last"] = a.memory_format == "channels_last"
    validate_cell(cell)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(rt["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = autocast_dtype(rt["precision"], device)
    batch = int(recipe["batch_size"])
    fmt = torch.channels_last if rt["channels_last"] else torch.contiguous_format
    data = build_data(
        cell["data"],
        batch_size=batch,
        eval_batch_size=batch,
        device=device,
        seed=int(rt["seed"]),
        channels_last=bool(rt["channels_last"]),
        randaugment_magnitude=cell["data"].get("randaugment_magnitude"),
        for_minival_only=True,
    )
    torch.manual_seed(int(rt["seed"]))
    lr = peak_lr(float(recipe["lr_base"]), batch)
    ours = build_model(cell["model"], num_classes=data.num_classes, in_chans=data.in_chans)
    models: dict[str, nn.Module] = {"rsscale": ours}
    if a.compile != "off":  # the same weights uncompiled: what compilation buys, measured alike
        models["rsscale-eager"] = copy.deepcopy(ours)
    report: dict[str, Any] = {"timm_twin": None}
    if not a.no_timm:
        twin, how = timm_twin(ours, cell["model"])
        report["timm_twin"] = how
        if twin is not None:
            models["timm"] = twin
    steps = {
        name: train_step_for(name, m, a, recipe, lr, device, fmt, amp_dtype) for name, m in models.items()
    }
    res = int(cell["data"]["train_res"])
    x = torch.randn(batch, data.in_chans, res, res, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, data.num_classes, (batch,), device=device)
    first_s: dict[str, float] = {}
    for name, st in steps.items():  # the first call compiles (or builds oneDNN primitives): untimed
        first_s[name] = time_call(lambda st=st: st(x, y), device)
        for _ in range(a.warmup):
            st(x, y)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            st(x, y)
            report.setdefault("peak_mem", {})[name] = peak_memory(device)
    if device.type != "cuda":
        report["peak_mem"] = {"all": peak_memory(device)}

    results: dict[str, Any] = {}
    if a.data in ("synthetic", "both"):
        t = interleaved({k: (lambda st=st: st(x, y)) for k, st in steps.items()}, a.steps, device)
        results["train_synthetic"] = {k: summarize(v, batch) for k, v in t.items()}
    for name, st in steps.items():
        st.model.eval()
        first_s[f"{name} (eval)"] = time_call(lambda st=st: st.infer(x), device)  # eval is a graph of its own
    t = interleaved({k: (lambda st=st: st.infer(x)) for k, st in steps.items()}, a.steps, device)
    results["inference"] = {k: summarize(v, batch) for k, v in t.items()}
    for st in steps.values():
        st.model.train()
    if a.data in ("real", "both"):
        results.update(_real_data(data, steps["rsscale"], a.steps, device, batch))
    ratios: dict[str, dict[str, float]] = {}
    for other in ("timm", "rsscale-eager"):
        for key in ("train_synthetic", "inference"):
            if other in steps and key in results:
                r = results[key]
                ratios.setdefault(other, {})[key] = r[other]["median_s"] / r["rsscale"]["median_s"]
    mc = model_cost(dict(cell["model"]), res, data.num_classes, data.in_chans)
    report.update(
        cell={k: cell[k] for k in ("model", "data", "recipe")},
        settings={
            "batch": batch,
            "precision": "bf16" if amp_dtype is not None else "fp32",
            "memory_format": "channels_last" if rt["channels_last"] else "contiguous",
            "compile": a.compile,
            "steps": a.steps,
            "warmup": a.warmup,
        },
        flops_per_image=mc["flops_per_image"],
        params=mc["params"],
        first_step_s=first_s,
        results=results,
        ratios=ratios,
        hardware=hardware(device),
        versions=versions(),
        time=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return report


def _real_data(data, step: TrainStep, steps: int, device, batch: int) -> dict[str, Any]:
    """The input stream alone (per core on CPU) and data + step in sequence, as the loop runs them."""
    stream = data.train.batches(0)
    n = min(steps, data.train.steps_per_epoch - 1)
    threads = torch.get_num_threads()
    next(stream)  # first batch: workers start, buffers allocate
    out: dict[str, Any] = {}
    if device.type == "cpu":
        torch.set_num_threads(1)  # in-memory augmentation per core; loader workers are one core each
    t_data, t_both, batches = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        batches.append(next(stream))
        sync(device)
        t_data.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    for xb, yb in batches:
        t_both.append(time_call(lambda xb=xb, yb=yb: step(xb, yb), device))
    if not t_data:
        return out
    workers = int(getattr(getattr(data.train, "loader", None), "num_workers", 0) or 0)
    d = summarize(t_data, batch)
    d["cores"] = max(1, workers) if device.type == "cpu" else None
    d["images_per_s_per_core"] = d["images_per_s"] / d["cores"] if d["cores"] else None
    s = summarize(t_both, batch)
    seq = [a + b for a, b in zip(t_data, t_both)]
    out["data_pipeline"] = d
    out["train_real"] = {"step": s, "data_plus_step": summarize(seq, batch)}
    out["data_over_train_rate"] = d["images_per_s"] / s["images_per_s"]
    return out


def format_report(r: Mapping[str, Any]) -> str:
    s, hw = r["settings"], r["hardware"]
    lines = [
        f"rsscale.bench on {hw.get('gpu') or hw['cpu']} ({hw['device']}, {hw['cpu_threads']} threads); "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        f"cell: {_cell_name(r['cell'])}; batch {s['batch']}, {s['precision']}, {s['memory_format']}, "
        f"compile {s['compile']}, {s['steps']} steps (+{s['warmup']} warm-up)",
    ]
    if r["timm_twin"]:
        lines.append(f"timm twin: {r['timm_twin']}")
    lines.append(f"{'measure':28s} {'model':14s} {'img/s':>9s} {'median ms':>10s} {'p10-p90 ms':>16s}")
    for key, res in r["results"].items():
        if not isinstance(res, Mapping):
            continue
        for model, v in res.items():
            if isinstance(v, Mapping) and "median_s" in v:
                lines.append(
                    f"{key:28s} {model:8s} {v['images_per_s']:9.0f} {1e3 * v['median_s']:10.2f} "
                    f"{1e3 * v['p10_s']:7.2f}-{1e3 * v['p90_s']:<8.2f}"
                )
    res = r["results"]
    if "data_pipeline" in res:
        d = res["data_pipeline"]
        core = f", {d['images_per_s_per_core']:.0f} img/s per core" if d.get("images_per_s_per_core") else ""
        lines.append(
            f"data pipeline: {d['images_per_s']:.0f} img/s{core}; "
            f"{res['data_over_train_rate']:.2f}x the training rate of this cell"
        )
    for other, by_key in r["ratios"].items():
        what = "rsscale compiled / eager" if other == "rsscale-eager" else "rsscale / timm"
        for key, v in by_key.items():
            lines.append(f"speed ratio {what} ({key}): {v:.2f}x  (>1: the first is faster)")
    lines.append(
        "first step (compile / warm-up) s: " + ", ".join(f"{k} {v:.2f}" for k, v in r["first_step_s"].items())
    )
    mem = r.get("peak_mem") or {}
    lines.append(
        "peak memory: "
        + ", ".join(f"{k} {v['peak_mem_bytes'] / 2**20:.0f} MiB ({v['kind']})" for k, v in mem.items())
    )
    return "\n".join(lines)


def _cell_name(c: Mapping[str, Any]) -> str:
    m, d = c["model"], c["data"]
    return f"RS-{m['depth']} x{m['width']} stem={m['stem']}, {d['name']} @ {d['train_res']} px"


def run_cli(prog: str, args: argparse.Namespace, measure: Callable, fmt: Callable) -> int:
    """A benchmark's command line: measure, print the table, write `--json`; bad input exits 2."""
    try:
        report = measure(args)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(fmt(report), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"report: {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("rsscale.bench", _parse(argv), run, format_report)


if __name__ == "__main__":
    raise SystemExit(main())
