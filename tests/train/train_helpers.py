"""Shared pieces of the training-core tests: tiny configs, a subprocess runner, run comparison.

Everything trains a ResNet-RS-26 at width 0.25 on 16 px synthetic images with one thread
(OpenMP threads that oversubscribe the cores make CPU training ~10x slower), so a 2-epoch run
takes a few seconds. Tests that compare a resumed run against `reference_run` use deterministic
fp32 settings; results must then be bit-identical.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rsscale.config import REPO_ROOT, cell_config, compose
from rsscale.layout import CHECKPOINT_NAME

# A tiny, fast cell: RS-26 x0.25, small stem, 16 px, 512 synthetic images (10 in minival),
# batch 64 -> 7 steps per epoch.
TINY = [
    "data=synthetic",
    "data.size=512",
    "data.train_res=16",
    "model.depth=26",
    "model.width=0.25",
    "model.stem=small",
    "recipe.batch_size=64",
    "recipe.epochs=2",
    "recipe.warmup_epochs=0.3",
    "logger.mode=disabled",
    "runtime.threads=1",
    "runtime.precision=fp32",
    "runtime.progress=none",
    "runtime.measure_latency=false",
]
STEPS_PER_EPOCH = 7  # (512 - 10 minival) // 64

# The resume/preemption cell: deterministic, and every piece of state a resume must restore is
# live: EMA, dropout and stochastic depth (global RNG), label smoothing, momentum.
RESUME = TINY + [
    "runtime.deterministic=true",
    "runtime.checkpoint_every_steps=2",
    "recipe.ema_decay=0.9",
    "recipe.dropout=0.1",
    "recipe.drop_path_rate=0.1",
    "recipe.label_smoothing=0.1",
]

RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from rsscale.config import cell_config, compose
    from rsscale.train.loop import PreemptRequested, train

    run_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
    preempt_at = int(os.environ.get("TEST_PREEMPT_AT_STEP", "0"))
    step_sleep = float(os.environ.get("TEST_STEP_SLEEP", "0"))  # widens the SIGKILL window

    def on_step(step):
        if step == preempt_at:
            os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(step_sleep)

    try:
        rec = train(cell_config(compose(overrides)), run_dir, on_step=on_step)
    except PreemptRequested:
        print("RESULT " + json.dumps({"status": "preempted"}), flush=True)
        sys.exit(3)
    print("RESULT " + json.dumps({"status": rec["status"], "history": rec["history"], "final": rec["final"]}),
          flush=True)
    """
)


def tiny_cell(*extra: str, base=TINY) -> dict:
    return cell_config(compose([*base, *extra]))


def runner_script(tmp_path: Path) -> Path:
    path = tmp_path / "runner.py"
    if not path.exists():
        path.write_text(RUNNER)
    return path


def start_run(
    tmp_path: Path, run_dir: Path, overrides: list[str], env: dict | None = None, log: Path | None = None
) -> subprocess.Popen:
    """`train()` in a fresh interpreter (what a SLURM task runs); output goes to `log` (run_dir.log)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("WANDB_MODE", None)
    log = Path(log or f"{run_dir}.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(runner_script(tmp_path)), str(run_dir), json.dumps(overrides)],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc.log_path = log
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    """Wait for a runner; return its RESULT line (or fail with the log)."""
    log = proc.log_path
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"runner timed out after {timeout} s:\n{log.read_text()[-4000:]}")
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        pytest.fail(f"runner exited {proc.returncode} without a result:\n{text[-4000:]}")
    return {"returncode": proc.returncode, **json.loads(lines[-1][len("RESULT ") :])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_ckpt(run_dir: Path) -> dict:
    return torch.load(Path(run_dir) / CHECKPOINT_NAME, map_location="cpu", weights_only=False)


def assert_same_run(a_dir: Path, b_dir: Path, a_record: dict, b_record: dict) -> None:
    """Bit-identical results: metrics, loss curve, model, EMA and optimiser state."""
    assert b_record["status"] == a_record["status"] == "completed"
    assert [h["train_loss"] for h in b_record["history"]] == [h["train_loss"] for h in a_record["history"]]
    for key in ("minival_top1", "minival_top5", "minival_top1_ema", "minival_top5_ema", "lr", "step"):
        assert [h.get(key) for h in b_record["history"]] == [h.get(key) for h in a_record["history"]], key
    assert b_record["final"] == a_record["final"]
    a, b = load_ckpt(a_dir), load_ckpt(b_dir)
    assert (a["step"], a["epoch"]) == (b["step"], b["epoch"])
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"model.{k} differs"
    for k in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]), f"ema.{k} differs"
    assert a["ema"]["updates"] == b["ema"]["updates"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
