"""Measured one-thread train-step time per image against the local CPU cost model (LPT key).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_cell_cost.py [--res 16] [DEPTH:WIDTH ...]

Times a bf16 channels_last train step (batch 128, synthetic input) of each ResNet-RS shape on one
thread and prints it beside `rsscale.launch.resources`' per-image estimate and their ratio. The
constants there were fitted to this script's output for the 13 default shapes at 16 px; rerun it
on another CPU to see how far they carry. No assertions: this is a measurement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.launch.resources import local_cell_seconds  # noqa: E402
from rsscale.models import build_model, model_cost  # noqa: E402

SHAPES = (
    "26:0.25 50:0.25 101:0.25 152:0.25 200:0.25 270:0.25 "
    "26:0.375 26:0.5 26:0.625 26:0.75 26:0.125 101:0.125 270:0.125"
)


def step_seconds(cfg: dict, res: int, steps: int = 3) -> float:
    m = build_model(cfg, num_classes=10, in_chans=1).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(128, 1, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    ts = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:  # the first step is warm-up
            ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--res", type=int, default=16)
    p.add_argument("shapes", nargs="*", default=SHAPES.split())
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"{'shape':>12} {'MFLOPs':>8} {'measured us/img':>16} {'model us/img':>13} {'ratio':>6}")
    for s in a.shapes:
        d, w = s.split(":")
        cfg = {"name": "resnet_rs", "depth": int(d), "width": float(w), "stem": "small"}
        f = model_cost(cfg, a.res, 10, 1)["flops_per_image"]
        cell = {
            "model": cfg,
            "data": {"name": "synthetic", "size": 1, "train_res": a.res},
            "recipe": {"epochs": 1},
        }
        model = local_cell_seconds(cell) * 1e6  # one image, one epoch, no evaluation
        meas = step_seconds(cfg, a.res) / 128 * 1e6
        print(f"{s:>12} {f / 1e6:8.1f} {meas:16.0f} {model:13.0f} {meas / model:6.2f}")


if __name__ == "__main__":
    main()
