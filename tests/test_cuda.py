"""The CUDA path: run on a GPU machine (scripts/gpu_check.sh), skipped cleanly without one.

Checks what the GPU path promises: channels_last end to end (no NCHW BatchNorm kernels under the
profiler), compiled == eager within bf16 tolerance, no recompilation after warm-up, and a
well-formed benchmark report on the device.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsscale.config import RecipeConfig
from rsscale.models import build_model
from rsscale.train.recipe import build_optimizer
from rsscale.train.step import TrainStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
REPO = Path(__file__).resolve().parents[1]
CFG = {"depth": 50, "width": 0.25, "stem": "released"}
RECIPE = RecipeConfig(weight_decay=4e-5, momentum=0.9, nesterov=False, wd_on_bn=False)


def _step(model, compiled: bool = False, mode: str | None = None) -> TrainStep:
    dev = torch.device("cuda")
    model = model.to(dev, memory_format=torch.channels_last).train()
    opt = build_optimizer(model, RECIPE, 0.1, dev)
    fwd = torch.compile(model, mode=mode) if compiled else model
    return TrainStep(fwd, opt, torch.nn.functional.cross_entropy, dev, torch.bfloat16)


def _batch(n=32, res=64):
    x = torch.randn(n, 3, res, res, device="cuda").contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (n,), device="cuda")


def test_fused_sgd_on_cuda():
    st = _step(build_model(CFG, num_classes=10))
    assert st.optimizer.defaults.get("fused") is True


def test_channels_last_end_to_end_no_nchw_batchnorm_kernels():
    st = _step(build_model(CFG, num_classes=10))
    x, y = _batch()
    st(x, y)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        st(x, y)
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    bn = [n for n in names if "batch_norm" in n or "bn_fw" in n or "bn_bw" in n]
    assert bn, "no BatchNorm kernel seen: the profiler check saw nothing"
    # NCHW kernels: cuDNN's carry "NCHW" in the name; ATen's native ones lack "channels_last"
    nchw = {n for n in bn if "nchw" in n.lower() or ("native::batch_norm" in n and "channels_last" not in n)}
    assert not nchw, sorted(nchw)[:10]


def test_compiled_matches_eager_and_does_not_recompile():
    torch.manual_seed(0)
    m = build_model(CFG, num_classes=10)
    twin = build_model(CFG, num_classes=10)
    twin.load_state_dict(m.state_dict())
    eager, compiled = _step(m), _step(twin, compiled=True)
    x, y = _batch()
    l_e, l_c = float(eager(x, y)), float(compiled(x, y))
    assert l_e == pytest.approx(l_c, rel=2e-2)
    from torch._dynamo.utils import counters

    compiled(x, y)
    before = dict(counters["stats"])
    for _ in range(5):
        compiled(x, y)
    assert dict(counters["stats"]).get("unique_graphs") == before.get("unique_graphs")
    eager.model.eval()
    compiled.model.eval()
    a, b = eager.infer(x).float(), compiled.infer(x).float()
    assert (a - b).abs().max().item() <= 3e-2 * a.abs().max().item() + 1e-2


def test_bench_on_cuda(tmp_path):
    out = tmp_path / "bench.json"
    args = ["data=synthetic", "data.size=512", "data.train_res=32", "--batch", "32", "--steps", "3"]
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.bench", *args, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    assert r["hardware"]["device"].startswith("cuda") and r["hardware"]["gpu"]
    assert r["peak_mem"]["rsscale"]["kind"] == "cuda allocated"
    assert r["results"]["train_synthetic"]["rsscale"]["images_per_s"] > 0


def _jpeg_tree(root: Path) -> Path:
    from rsscale.bench_data import make_tree

    return make_tree(root, 24, classes=3, size=(120, 90))


def test_nvjpeg_decode_matches_cpu_path(tmp_path):
    """data.decode=cuda: batched nvjpeg + augment on the GPU gives the CPU path's crops, flips and labels;
    pixels differ only by decoder/resize rounding (a few uint8 levels on average at most)."""
    import numpy as np

    from rsscale.data.imagenet import ImageTreeDataset, LoaderTrainStream, load_tree, train_transform

    root = _jpeg_tree(tmp_path / "tree")
    t = load_tree(str(root), with_val=False)
    args = (str(root / "train"), t["train_paths"], t["train_labels"], train_transform(64, 9))
    kw = {"batch_size": 8, "seed": 0, "num_workers": 1}
    cpu = LoaderTrainStream(ImageTreeDataset(*args, seed=0, random=True), np.arange(24), device="cpu", **kw)
    gpu_ds = ImageTreeDataset(*args, seed=0, random=True, raw=True)
    gpu = LoaderTrainStream(gpu_ds, np.arange(24), device="cuda", decode_on="cuda", **kw)
    for (xa, ya, ia), (xb, yb, ib) in zip(
        cpu.batches(1, return_indices=True), gpu.batches(1, return_indices=True)
    ):
        assert xb.device.type == "cuda" and xb.shape == xa.shape == (8, 3, 64, 64)
        assert torch.equal(ia, ib) and torch.equal(ya, yb.cpu())
        diff = (xa - xb.cpu()).abs() * 0.226 * 255  # back to uint8 levels
        assert diff.mean().item() < 2.0, diff.mean()


def test_bench_data_on_cuda(tmp_path):
    out = tmp_path / "bench_data.json"
    root = _jpeg_tree(tmp_path / "tree")
    args = ["data=imagenet", f"data.root={root}", "data.train_res=64", "--batch", "8", "--batches", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.bench_data", *args, "--workers", "1", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {p["decode"]: p for p in json.loads(out.read_text())["pipelines"]}
    assert rows["cuda"]["images_per_s"] > 0 and rows["cuda"]["device"].startswith("cuda")
