"""`python -m rsscale.bench`: a well-formed report in a tiny CPU mode, the timm twin is the same network,
the compiled model computes what the eager one does. Timings are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsscale.bench import timm_twin
from rsscale.models import build_model, load_timm_state_dict
from rsscale.train.step import TrainStep

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data=synthetic",
    "data.size=128",
    "data.train_res=16",
    "--batch",
    "8",
    "--steps",
    "2",
    "--warmup",
    "0",
]


def _bench(
    tmp_path: Path, *args: str, module: str = "rsscale.bench"
) -> tuple[subprocess.CompletedProcess, dict]:
    """Run a benchmark module in a subprocess (one thread) and return it with its JSON report."""
    out = tmp_path / f"{module.rsplit('.', 1)[-1]}.json"
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text())


def test_bench_tiny_cpu_report(tmp_path):
    proc, r = _bench(tmp_path, *TINY)
    res = r["results"]
    for key in ("train_synthetic", "inference"):
        for model in ("rsscale", "timm"):
            v = res[key][model]
            assert v["n"] == 2 and v["median_s"] > 0 and v["images_per_s"] == pytest.approx(8 / v["median_s"])
            assert v["p10_s"] <= v["median_s"] <= v["p90_s"]
    assert set(r["ratios"]["timm"]) == {"train_synthetic", "inference"}
    assert all(v > 0 for v in r["ratios"]["timm"].values())
    assert res["data_pipeline"]["images_per_s"] > 0 and res["data_pipeline"]["cores"] == 1
    assert res["train_real"]["data_plus_step"]["median_s"] >= res["train_real"]["step"]["median_s"] * 0.5
    assert res["data_over_train_rate"] > 0
    settings = dict(r["settings"])
    assert settings.pop("precision") in ("bf16", "fp32")
    assert settings == {
        "batch": 8,
        "memory_format": "channels_last",
        "compile": "off",
        "steps": 2,
        "warmup": 0,
    }
    assert r["hardware"]["device"] == "cpu" and r["hardware"]["cpu"]
    assert {"torch", "torchvision", "timm", "python"} <= set(r["versions"])
    assert r["flops_per_image"] > 0 and r["params"] > 0
    assert r["peak_mem"]["all"]["peak_mem_bytes"] > 0
    assert "NOT the same shape" not in r["timm_twin"]
    assert "speed ratio rsscale / timm (train_synthetic)" in proc.stdout


def test_bench_bad_input_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.bench", "data=synthetic", "model.depth=37", "--steps", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "model.depth=37" in proc.stderr, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "rsscale.bench", "--steps", "0"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--steps must be >= 1" in proc.stderr


@pytest.mark.parametrize(
    "cfg",
    [
        {"depth": 26, "width": 0.25, "stem": "small"},
        {"depth": 26, "width": 0.5, "stem": "released"},
        {"depth": 50, "width": 1.0, "stem": "released"},
    ],
    ids=["small-stem", "released-w0.5", "resnetrs50"],
)
def test_timm_twin_is_the_same_network(cfg):
    """Same weights in, same logits out: the benchmark compares like with like."""
    torch.manual_seed(0)
    ours = build_model(cfg, num_classes=10, in_chans=3).eval()
    twin, how = timm_twin(ours, {**ours_cfg_defaults(), **cfg})
    assert "NOT the same shape" not in how
    if cfg["depth"] == 50:
        assert "resnetrs50" in how
    twin.eval()
    with torch.no_grad():
        for p in twin.parameters():
            p.normal_(0, 0.05)
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    load_timm_state_dict(ours, twin.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), twin(x), atol=1e-5, rtol=1e-4)


def ours_cfg_defaults() -> dict:
    from rsscale.models.resnet_rs import MODEL_CFG_DEFAULTS

    return dict(MODEL_CFG_DEFAULTS)


@pytest.mark.slow
def test_compiled_model_matches_eager_in_bf16():
    """inductor (default mode) vs eager, bf16 autocast, channels_last: the same logits within bf16 tolerance.

    Inference only: compiling the training graph too takes minutes on 2 busy cores; the train graph's
    inductor compile is exercised by tests/models (`test_compile_inductor_forward_backward`).
    """
    torch.manual_seed(0)
    cfg = {"blocks": [1, 1, 1, 1], "width": 0.25, "stem": "small"}
    model = build_model(cfg, num_classes=10, in_chans=1).to(memory_format=torch.channels_last).eval()
    with torch.no_grad():  # non-trivial BN statistics and last-BN gammas, so every branch matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(8, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    dev = torch.device("cpu")
    eager = TrainStep(model, None, None, dev, torch.bfloat16)
    compiled = TrainStep(torch.compile(model), None, None, dev, torch.bfloat16)
    with torch.no_grad():
        fp32 = model(x)
    a, b = eager.infer(x).float(), compiled.infer(x).float()
    tol = 3e-2 * fp32.abs().max().item() + 1e-2  # bf16 keeps ~3 significant digits
    assert (a - fp32).abs().max().item() <= tol  # the tolerance is what bf16 itself costs eager
    assert (b - a).abs().max().item() <= tol, (b - a).abs().max()


def _bench_data(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    return _bench(tmp_path, *args, module="rsscale.bench_data")


def test_bench_data_tiny_tree_report(tmp_path):
    """The data-pipeline benchmark on a generated JPEG tree: every pipeline row, per-core figures and
    the ratio to the cell's training rate are present and consistent (not timed)."""
    tree = tmp_path / "tree"
    args = ["model.width=0.25", "data.train_res=16", "--make-tree", str(tree), "--tree-images", "24"]
    proc, r = _bench_data(
        tmp_path, *args, "--batch", "4", "--batches", "2", "--workers", "0,1", "--train-steps", "1"
    )
    assert len(list((tree / "train").glob("*/*.JPEG"))) == 24
    rows = {p["name"]: p for p in r["pipelines"]}
    assert list(rows) == ["workers=0 PIL+v2", "workers=1 PIL+v2", "batched decode, CPU"]
    for p in rows.values():
        assert p["n"] == 2 and p["images_per_s"] > 0 and p["cores"] == 1
        assert p["images_per_s_per_core"] == pytest.approx(p["images_per_s"])
        assert p["over_train_rate"] == pytest.approx(p["images_per_s"] / r["train"]["images_per_s"])
    assert (
        rows["workers=1 PIL+v2"]["workers"] == 1 and rows["batched decode, CPU"]["decode"] == "cpu (batched)"
    )
    assert r["train"]["n"] == 1 and r["settings"]["batch"] == 4 and r["cell"]["data"]["name"] == "imagenet"
    assert r["hardware"]["device"] == "cpu" and "torchvision" in r["versions"]
    assert "training rate of the cell" in proc.stdout and "batched decode, CPU" in proc.stdout


def test_bench_data_in_memory_and_errors(tmp_path):
    proc, r = _bench_data(
        tmp_path, "data=synthetic", "data.size=64", "data.train_res=16", "--batch", "8", "--no-train"
    )
    (p,) = r["pipelines"]
    assert p["name"] == "in-memory stream" and p["images_per_s"] > 0 and r["train"] is None
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsscale.bench_data",
            "data=synthetic",
            "data.size=60",
            "--batch",
            "32",
            "--no-train",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "need at least 2" in bad.stderr, bad.stderr
