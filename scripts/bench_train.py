"""Training throughput of the default embedded cell on this machine: images/s and ms/step.

    .venv/bin/python scripts/bench_train.py [--steps 3] [--threads 1 2] [OVERRIDE ...]

The cell is `compose(OVERRIDES)` (default: RS-26 x0.25, small stem, Fashion-MNIST at 32 px,
batch 256). One train step is what `rsscale.train.loop` does: autocast forward, cross-entropy,
backward, fused SGD step. Every combination of precision (fp32, bf16), memory format
(channels_last on/off) and intra-op threads is timed in this one process on the same batches,
and the ratios to fp32 / contiguous at the same thread count are printed, so they compare like
with like on a box whose load changes. The input stream (crop, flip, resize, normalise) is timed
separately; `data+step` is the loop's sequential sum. No assertions: this is a measurement.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.config import cell_config, compose  # noqa: E402
from rsscale.data import build_data  # noqa: E402
from rsscale.models import build_model  # noqa: E402
from rsscale.train.loop import cpu_has_fast_bf16  # noqa: E402
from rsscale.train.recipe import build_optimizer, peak_lr  # noqa: E402


def time_steps(cell, batches, num_classes, in_chans, precision, channels_last, steps) -> float:
    """Seconds per train step (median of `steps` after one warm-up step)."""
    torch.manual_seed(0)
    model = build_model(cell["model"], num_classes=num_classes, in_chans=in_chans)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    recipe = cell["recipe"]
    opt = build_optimizer(
        model, recipe, peak_lr(recipe["lr_base"], recipe["batch_size"]), torch.device("cpu")
    )
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=float(recipe["label_smoothing"]))
    amp = torch.bfloat16 if precision == "bf16" else None
    times = []
    for i in range(steps + 1):
        x, y = batches[i % len(batches)]
        x = x.contiguous(memory_format=fmt)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step is warm-up (oneDNN primitive creation)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (after 1 warm-up)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the cell, e.g. data.train_res=16")
    a = ap.parse_args()

    cell = cell_config(compose(a.overrides))
    batch = int(cell["recipe"]["batch_size"])
    m, d = cell["model"], cell["data"]
    print(
        f"cell: RS-{m['depth']} x{m['width']} stem={m['stem']}, {d['name']} @ {d['train_res']} px, "
        f"batch {batch}; torch {torch.__version__}, {torch.get_num_threads()} default threads, "
        f"native CPU bf16: {cpu_has_fast_bf16()}"
    )
    data = build_data(d, batch_size=batch, eval_batch_size=batch, device="cpu", seed=0, channels_last=False)
    stream = data.train.batches(0)
    n_batches = min(a.steps + 1, data.train.steps_per_epoch)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    batches = [next(stream) for _ in range(n_batches)]
    data_s = (time.perf_counter() - t0) / n_batches
    print(f"input stream: {1e3 * data_s:.1f} ms/batch ({batch / data_s:.0f} images/s, 1 thread)")

    rows = []
    for threads, precision, cl in itertools.product(a.threads, ("fp32", "bf16"), (False, True)):
        torch.set_num_threads(threads)
        s = time_steps(cell, batches, data.num_classes, data.in_chans, precision, cl, a.steps)
        rows.append((threads, precision, cl, s))
        print(
            f"threads={threads} {precision:4s} channels_last={'on ' if cl else 'off'}: "
            f"{1e3 * s:8.1f} ms/step  {batch / s:7.0f} images/s (step)  "
            f"{batch / (s + data_s):7.0f} images/s (data+step)",
            flush=True,
        )

    print("\nratios (speed-up over fp32 + contiguous at the same thread count; >1 is faster):")
    for threads in a.threads:
        base = next(s for t, p, cl, s in rows if t == threads and p == "fp32" and not cl)
        parts = [
            f"{p}{'+cl' if cl else ''} {base / s:.2f}x"
            for t, p, cl, s in rows
            if t == threads and (p, cl) != ("fp32", False)
        ]
        print(f"  threads={threads}: " + ", ".join(parts))
    if len(a.threads) > 1:
        lo, hi = min(a.threads), max(a.threads)
        for p, cl in itertools.product(("fp32", "bf16"), (False, True)):
            s_lo = next(s for t, pp, c, s in rows if (t, pp, c) == (lo, p, cl))
            s_hi = next(s for t, pp, c, s in rows if (t, pp, c) == (hi, p, cl))
            print(f"  {p}{'+cl' if cl else ''}: {hi} threads vs {lo}: {s_lo / s_hi:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
