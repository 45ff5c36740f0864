"""The cost of cells/<id>/progress.json against training: what `ProgressFile` adds per step.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_progress.py [--steps 60]

Measures, in one process: a throttled `tick` (no write due), one atomic write (a due tick), and a
train step of the smallest test cell (RS-26 x0.25, 16 px, batch 64, one thread). Then trains the
same steps twice, interleaved, with the hook writing every second and every step, and prints the
overhead ratios. No assertions: this is a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.models import build_model  # noqa: E402
from rsscale.progress import ProgressFile  # noqa: E402


def train_steps(steps: int, hook) -> float:
    torch.manual_seed(0)
    cfg = {"name": "resnet_rs", "depth": 26, "width": 0.25, "stem": "small"}
    m = build_model(cfg, num_classes=10, in_chans=1).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 1, 16, 16), torch.randint(0, 10, (64,))
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hook(step)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "progress.json"

        def pfile(every_s: float) -> ProgressFile:
            pf = ProgressFile(path, steps_total=10**6, epochs=1, images_per_step=64, every_s=every_s)
            pf.start(0, 0)
            return pf

        idle = pfile(3600.0)
        n = 200_000
        t0 = time.perf_counter()
        for i in range(n):
            idle.tick(i, 0)
        tick_us = (time.perf_counter() - t0) / n * 1e6
        due = pfile(0.0)
        t0 = time.perf_counter()
        for i in range(500):
            due.tick(i, 0)
        write_ms = (time.perf_counter() - t0) / 500 * 1e3

        train_steps(5, lambda s: None)  # warm-up
        base, per_s, per_step = [], [], []
        for _ in range(a.rounds):  # interleaved: load changes hit all three alike
            base.append(train_steps(a.steps, lambda s: None))
            pf1 = pfile(1.0)
            per_s.append(train_steps(a.steps, lambda s, pf=pf1: pf.tick(s, 0)))
            pfs = pfile(0.0)
            per_step.append(train_steps(a.steps, lambda s, pf=pfs: pf.tick(s, 0)))
    step_ms = min(base) / a.steps * 1e3
    print(f"throttled tick (no write due): {tick_us:.2f} us")
    print(f"atomic write of progress.json: {write_ms:.3f} ms")
    print(f"train step (RS-26 x0.25, 16 px, batch 64, 1 thread): {step_ms:.1f} ms")
    per_step_ms = tick_us / 1e3 + write_ms * min(1.0, step_ms / 1e3)  # a write per second (or per step)
    print(f"modelled overhead at 1 write/s: {per_step_ms / step_ms:.2e} of the step time")
    print(f"measured ratio, writes every 1 s / no hook: {min(per_s) / min(base):.4f}")
    print(f"measured ratio, a write every step / no hook: {min(per_step) / min(base):.4f}")


if __name__ == "__main__":
    main()
