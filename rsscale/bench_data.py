# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this in the entry point's module)
"""`python -m rsscale.bench_data [OVERRIDES] [options]`: the input pipeline's rate against training's.

    python -m rsscale.bench_data data=imagenet data.root=/data/imagenet --workers 1,2,4,8
    python -m rsscale.bench_data model.depth=50 data.train_res=160 --make-tree /tmp/jpegs --batch 32
    python -m rsscale.bench_data                    # the embedded default cell (in-memory Fashion-MNIST)

Decoded and augmented images per second, per CPU core, for the cell's training stream: for an
image tree, the worker path (PIL decode + torchvision v2 augment in 0..N DataLoader workers), the
batched decode path in the training process on CPU (one core) and, on a CUDA device, the batched
nvjpeg path (`data.decode=cuda`, workers reading bytes); for in-memory data, the on-device stream.
Each is set against the training rate of the same cell (rsscale's train step on synthetic input at
the same batch, precision and memory format): a ratio >= 1 means the pipeline keeps up on that many
cores. `--make-tree DIR` writes an ImageNet-shaped JPEG tree (about 500x375, smooth content) to
time without ImageNet. Prints a table; `--json` writes the figures with hardware and versions.
A measurement, never a test of speed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from rsscale.bench import hardware, run_cli, summarize, train_step_for, versions
from rsscale.cli import parse_args
from rsscale.train.step import sync, time_call


def make_tree(
    root: Path, n: int, classes: int = 10, size: tuple[int, int] = (500, 375), seed: int = 0
) -> Path:
    """An ImageFolder tree of ``n`` JPEGs (train/) and a few (val/): smooth random images about
    ImageNet's median size, quality 90, so decoding costs what photos cost (noise would cost more)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w0, h0 = size
    for split, count in (("train", n), ("val", max(classes, n // 50))):
        for i in range(count):
            c = i % classes
            d = root / split / f"c{c:03d}"
            d.mkdir(parents=True, exist_ok=True)
            f = d / f"img_{i:06d}.JPEG"
            if f.exists():
                continue
            w, h = int(w0 * rng.uniform(0.8, 1.2)), int(h0 * rng.uniform(0.8, 1.2))
            low = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(low).resize((w, h), Image.BICUBIC)
            arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
            Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(f, quality=90)
    return root


def _tree_stream(cfg, *, batch, workers, decode_on, device, seed, magnitude, channels_last):
    from rsscale.data import imagenet as inet

    tree = inet.load_tree(cfg["root"], with_val=False)
    ds = inet.ImageTreeDataset(
        str(Path(cfg["root"]) / "train"),
        tree["train_paths"],
        tree["train_labels"],
        inet.train_transform(cfg["train_res"], magnitude),
        seed=seed,
        random=True,
        raw=decode_on is not None,
    )
    idx = np.arange(len(tree["train_paths"]))
    return inet.LoaderTrainStream(
        ds,
        idx,
        batch_size=batch,
        seed=seed,
        device=device,
        num_workers=workers,
        channels_last=channels_last,
        decode_on=decode_on,
    )


def time_stream(stream, batches: int, device: torch.device) -> dict[str, Any]:
    """Images/s of ``stream`` over ``batches`` batches after a first, untimed one (workers start)."""
    n = min(batches, stream.steps_per_epoch - 1)
    if n < 1:
        raise ValueError(
            f"the training set holds {stream.steps_per_epoch} batch(es) of {stream.batch_size}: "
            "need at least 2 (a larger tree, --make-tree with more --tree-images, or a smaller --batch)"
        )
    it = stream.batches(0)
    next(it)
    sync(device)
    times = []
    t_all = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        next(it)
        sync(device)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    it.close()
    out = summarize(times, stream.batch_size)
    out["images_per_s"] = stream.batch_size * n / total  # throughput over the whole run, not 1/median
    return out


def _parse(argv):
    ap = argparse.ArgumentParser(
        prog="python -m rsscale.bench_data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the cell, e.g. data.train_res=160")
    ap.add_argument("--batch", type=int, help="batch size (default: the recipe's)")
    ap.add_argument("--workers", default="0,1", help="comma-separated DataLoader worker counts (image trees)")
    ap.add_argument("--batches", type=int, default=8, help="timed batches per pipeline (after one untimed)")
    ap.add_argument("--train-steps", type=int, default=5, help="timed train steps for the training rate")
    ap.add_argument(
        "--make-tree", type=Path, help="write (or reuse) a JPEG tree here and time it (data=imagenet)"
    )
    ap.add_argument("--tree-images", type=int, default=512, help="training images in --make-tree's tree")
    ap.add_argument("--no-train", action="store_true", help="skip the training rate")
    ap.add_argument("--json", type=Path, help="write the report here")
    a = parse_args(ap, argv)
    try:
        a.workers = sorted({int(w) for w in str(a.workers).split(",") if w.strip()})
    except ValueError:
        ap.error(f"--workers must be comma-separated integers, got {a.workers!r}")
    if not a.workers or min(a.workers) < 0:
        ap.error("--workers needs integers >= 0")
    for name in ("batch", "batches", "train_steps", "tree_images"):
        v = getattr(a, name)
        if v is not None and v < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    return a


def run(a: argparse.Namespace) -> dict[str, Any]:
    from rsscale.config import cell_config, compose, validate_cell
    from rsscale.data import build_data
    from rsscale.data.registry import dataset, shape
    from rsscale.models import build_model
    from rsscale.train.loop import autocast_dtype, pick_device
    from rsscale.train.recipe import peak_lr

    overrides = list(a.overrides)
    if a.make_tree:
        make_tree(a.make_tree, a.tree_images)
        overrides += ["data=imagenet", f"data.root={a.make_tree}"]
    cell = cell_config(compose(overrides))
    rt, recipe, dcfg = cell["runtime"], cell["recipe"], cell["data"]
    if a.batch:
        recipe["batch_size"] = a.batch
    validate_cell(cell)
    device = pick_device(rt["device"])
    batch, seed, cl = int(recipe["batch_size"]), int(rt["seed"]), bool(rt["channels_last"])
    magnitude = dcfg.get("randaugment_magnitude")
    tree = dataset(dcfg["name"]).image_tree
    threads = torch.get_num_threads()
    pipelines: list[dict[str, Any]] = []

    def add(name, decode, dev, workers, cores, stats):
        stats.update(name=name, decode=decode, device=str(dev), workers=workers, cores=cores)
        stats["images_per_s_per_core"] = stats["images_per_s"] / cores if cores else None
        pipelines.append(stats)

    if device.type == "cpu":
        torch.set_num_threads(1)  # per core: the training process's share is one core too
    try:
        if tree:
            kw = {"batch": batch, "seed": seed, "magnitude": magnitude, "channels_last": cl}
            for w in a.workers:
                st = _tree_stream(dcfg, workers=w, decode_on=None, device=device, **kw)
                add(f"workers={w} PIL+v2", "cpu", device, w, max(1, w), time_stream(st, a.batches, device))
                del st
            st = _tree_stream(dcfg, workers=0, decode_on=torch.device("cpu"), device=device, **kw)
            add("batched decode, CPU", "cpu (batched)", "cpu", 0, 1, time_stream(st, a.batches, device))
            if device.type == "cuda":
                w = max(a.workers)
                st = _tree_stream(dcfg, workers=w, decode_on=device, device=device, **kw)
                add(f"nvjpeg, workers={w} read", "cuda", device, w, None, time_stream(st, a.batches, device))
            del st
        else:
            data = build_data(
                dcfg,
                batch_size=batch,
                eval_batch_size=batch,
                device=device,
                seed=seed,
                channels_last=cl,
                randaugment_magnitude=magnitude,
                for_minival_only=True,
            )
            cores = 1 if device.type == "cpu" else None
            add("in-memory stream", "none", device, 0, cores, time_stream(data.train, a.batches, device))
    finally:
        torch.set_num_threads(threads)

    train = None
    if not a.no_train:
        facts = shape(dcfg)  # the registry's classes and channels
        if tree:  # the tree's classes, as the loop sizes the head
            num_classes = sum(e.is_dir() for e in (Path(dcfg["root"]) / "train").iterdir())
        else:
            num_classes = facts.num_classes
        in_chans = facts.channels
        torch.manual_seed(seed)
        model = build_model(cell["model"], num_classes=num_classes, in_chans=in_chans)
        amp_dtype = autocast_dtype(rt["precision"], device)
        fmt = torch.channels_last if cl else torch.contiguous_format
        step = train_step_for(
            "rsscale",
            model,
            SimpleNamespace(compile="off"),
            recipe,
            peak_lr(float(recipe["lr_base"]), batch),
            device,
            fmt,
            amp_dtype,
        )
        res = int(dcfg["train_res"])
        x = torch.randn(batch, in_chans, res, res, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, num_classes, (batch,), device=device)
        step(x, y)  # oneDNN primitives / cuDNN plans: untimed
        train = summarize([time_call(lambda: step(x, y), device) for _ in range(a.train_steps)], batch)
        train.update(precision="bf16" if amp_dtype is not None else "fp32", threads=torch.get_num_threads())
        for p in pipelines:
            p["over_train_rate"] = p["images_per_s"] / train["images_per_s"]
    return {
        "cell": {k: cell[k] for k in ("model", "data", "recipe")},
        "settings": {
            "batch": batch,
            "batches": a.batches,
            "workers": a.workers,
            "randaugment_magnitude": magnitude,
            "memory_format": "channels_last" if cl else "contiguous",
        },
        "pipelines": pipelines,
        "train": train,
        "hardware": hardware(device),
        "versions": versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def format_report(r: dict[str, Any]) -> str:
    hw, s, d = r["hardware"], r["settings"], r["cell"]["data"]
    lines = [
        f"rsscale.bench_data on {hw.get('gpu') or hw['cpu']} ({hw['device']}); "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
        f"data {d['name']} @ {d['train_res']} px, batch {s['batch']}, "
        f"RandAugment {s['randaugment_magnitude']}, {s['batches']} timed batches",
        f"{'pipeline':28s} {'img/s':>9s} {'cores':>5s} {'img/s/core':>10s} {'x train':>8s}",
    ]
    for p in r["pipelines"]:
        per = f"{p['images_per_s_per_core']:10.0f}" if p["images_per_s_per_core"] else f"{'-':>10s}"
        ratio = f"{p['over_train_rate']:7.2f}x" if "over_train_rate" in p else f"{'-':>8s}"
        cores = str(p["cores"]) if p["cores"] else "gpu"
        lines.append(f"{p['name']:28s} {p['images_per_s']:9.0f} {cores:>5s} {per} {ratio}")
    t = r["train"]
    if t:
        lines.append(
            f"training rate of the cell: {t['images_per_s']:.0f} img/s ({t['precision']}, "
            f"{t['threads']} threads, median step {1e3 * t['median_s']:.1f} ms); x train >= 1: keeps up"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli("rsscale.bench_data", _parse(argv), run, format_report)


if __name__ == "__main__":
    raise SystemExit(main())
