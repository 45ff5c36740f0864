"""One short real run (bf16 autocast + channels_last, EMA) and the run record it leaves;
divergence; W&B offline with a preempted and resumed run."""

from __future__ import annotations

import json
import math
import os
import re
import signal

import pytest
import torch
from train_helpers import STEPS_PER_EPOCH, load_ckpt, tiny_cell

import rsscale.data
import rsscale.models
from rsscale import io as rio
from rsscale.config import cell_hash
from rsscale.layout import RECORD_NAME
from rsscale.models import count_params
from rsscale.train.loop import PreemptRequested, train
from rsscale.train.recipe import lr_at, peak_lr
from rsscale.train.record_file import load_record, write_record

SHORT = [
    "runtime.precision=bf16",
    "runtime.channels_last=true",
    "recipe.ema_decay=0.9",
    "runtime.measure_latency=true",
    "runtime.latency_batch=8",
    "runtime.latency_iters=1",
]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A 2-epoch bf16/channels_last run with EMA, watching what reaches the model."""
    run_dir = tmp_path_factory.mktemp("short") / "run"
    seen = {"train_idx": [], "bundle": None, "dtypes": set(), "channels_last": set()}
    real_build_data, real_build_model = rsscale.data.build_data, rsscale.models.build_model

    def build_data(*a, **kw):
        bundle = real_build_data(*a, **kw)
        seen["bundle"] = bundle
        batches = bundle.train.batches

        def spy_batches(epoch, start_step=0, **kw2):
            for x, y, idx in batches(epoch, start_step, return_indices=True):
                seen["train_idx"].append(idx)
                yield x, y

        bundle.train.batches = spy_batches
        return bundle

    def build_model(*a, **kw):
        model = real_build_model(*a, **kw)

        def hook(module, inputs, output):
            if module.training:
                seen["dtypes"].add(output.dtype)
                seen["channels_last"].add(inputs[0].is_contiguous(memory_format=torch.channels_last))

        model.stem[0].register_forward_hook(hook)
        return model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rsscale.data, "build_data", build_data)
        mp.setattr(rsscale.models, "build_model", build_model)
        cell = tiny_cell(*SHORT)
        record = train(cell, run_dir)
    return cell, run_dir, record, seen


def test_bf16_channels_last_run_completes_and_learns(short_run):
    cell, run_dir, record, seen = short_run
    assert record["status"] == "completed", record.get("error")
    assert seen["dtypes"] == {torch.bfloat16}  # autocast on the CPU
    assert seen["channels_last"] == {True}
    assert record["provenance"]["precision"] == "bf16" and record["provenance"]["device"] == "cpu"
    ckpt = load_ckpt(run_dir)
    conv = next(v for k, v in ckpt["model"].items() if v.ndim == 4 and v.shape[-1] > 1)
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    losses = [h["train_loss"] for h in record["history"]]
    assert losses[1] < losses[0] < math.log(10) * 1.2  # synthetic classes are easy: it learns
    assert record["final"]["top1"] > 0.2  # chance is 0.1


def test_minival_never_reaches_a_training_batch(short_run):
    _, _, _, seen = short_run
    bundle = seen["bundle"]
    trained = torch.cat(seen["train_idx"])
    assert len(trained) == 2 * STEPS_PER_EPOCH * 64
    minival = set(bundle.minival.indices.tolist())
    assert len(minival) == bundle.minival_size == 10
    assert minival.isdisjoint(trained.tolist())


def test_lr_in_history_follows_the_schedule(short_run):
    cell, _, record, _ = short_run
    r = cell["recipe"]
    total = 2 * STEPS_PER_EPOCH
    warm = round(r["warmup_epochs"] * STEPS_PER_EPOCH)
    for h in record["history"]:  # the LR of the epoch's last step
        expect = lr_at(h["step"] - 1, total_steps=total, warmup_steps=warm, peak=peak_lr(r["lr_base"], 64))
        assert h["lr"] == pytest.approx(expect)


def test_record_schema(short_run):
    cell, run_dir, record, _ = short_run
    on_disk = json.loads((run_dir / RECORD_NAME).read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert on_disk["schema_version"] == 1
    assert on_disk["cell_hash"] == cell_hash(cell)
    assert on_disk["cell_id"].startswith("d26-w0.25-r16-e2-")
    assert on_disk["config"] == json.loads(json.dumps(cell))
    assert (on_disk["status"], on_disk["error_class"], on_disk["error"]) == ("completed", None, None)
    assert on_disk["attempts"] == 1
    for key in ("created", "updated", "finished"):
        assert ISO.match(on_disk[key]), key

    assert [h["epoch"] for h in on_disk["history"]] == [1, 2]
    assert [h["step"] for h in on_disk["history"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    for h in on_disk["history"]:
        for key in ("train_loss", "lr", "images_per_s", "epoch_s"):
            assert isinstance(h[key], float) and h[key] > 0, key
        for key in ("minival_top1", "minival_top5", "minival_top1_ema", "minival_top5_ema"):
            assert 0.0 <= h[key] <= 1.0, key

    final = on_disk["final"]
    for key in ("top1", "top5", "val_top1", "val_top5", "val_top1_ema", "val_top5_ema"):
        assert 0.0 <= final[key] <= 1.0, key
    for key in ("minival_top1", "minival_top5", "best_minival_top1"):
        assert 0.0 <= final[key] <= 1.0, key
    assert (final["top1"], final["top5"]) == (final["val_top1_ema"], final["val_top5_ema"])  # EMA on
    assert final["top1"] <= final["top5"]
    assert final["best_minival_top1"] == max(h["minival_top1_ema"] for h in on_disk["history"])
    assert 0.0 <= final["train_top1"] <= 1.0 and final["train_eval_images"] == 10  # minival's size
    assert final["generalization_gap"] == pytest.approx(final["train_top1"] - final["minival_top1_ema"])

    cost = on_disk["cost"]
    assert cost["params"] == count_params(
        rsscale.models.build_model(cell["model"], num_classes=10, in_chans=3)
    )
    assert cost["flops_per_image"] > 0 and cost["train_images"] == 502  # 512 - 10 in minival
    assert cost["train_step_s"] > 0 and cost["infer_s"] > 0 and cost["latency_batch"] == 8
    assert cost["images_per_s"] > 0 and cost["train_time_s"] > 0 and cost["peak_mem_bytes"] > 0

    prov = on_disk["provenance"]
    assert isinstance(prov["git_commit"], str) and re.match(r"^[0-9a-f]{40}(-dirty)?$", prov["git_commit"])
    assert torch.__version__.startswith(prov["versions"]["torch"])
    assert prov["hardware"]["cpu_count"] >= 1 and prov["hostname"] and prov["python"]
    assert prov["world_size"] == 1 and prov["wandb_run_id"]


def test_record_write_is_atomic(tmp_path, monkeypatch):
    write_record(tmp_path, {"status": "running", "n": 1})

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(rio.os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        write_record(tmp_path, {"status": "completed", "n": 2})
    assert load_record(tmp_path)["n"] == 1  # the old record, whole
    assert [p.name for p in tmp_path.iterdir()] == [RECORD_NAME]  # no temp file left


def test_nan_loss_ends_the_run_as_diverged(tmp_path):
    cell = tiny_cell(
        "recipe.lr_base=1e6", "recipe.warmup_epochs=0", "recipe.epochs=1", "runtime.log_every_steps=1"
    )
    record = train(cell, tmp_path / "run")  # returned, not raised
    assert (record["status"], record["error_class"]) == ("diverged", "diverged")
    assert "not finite" in record["error"] and record["finished"]
    on_disk = load_record(tmp_path / "run")
    assert (on_disk["status"], on_disk["error_class"]) == ("diverged", "diverged")
    assert on_disk["final"] == {}


def test_wandb_offline_run_keeps_its_id_across_a_preemption(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cell = tiny_cell("logger.mode=offline", "recipe.epochs=1")
    run_dir = tmp_path / "run"

    # A previous SIGUSR2 handler (submitit's, in a SLURM job) is called after the checkpoint.
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with pytest.raises(PreemptRequested):
            train(cell, run_dir, on_step=lambda s: s == 2 and os.kill(os.getpid(), signal.SIGUSR2))
        assert calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
    first = load_record(run_dir)
    run_id = first["provenance"]["wandb_run_id"]
    assert first["status"] == "preempted" and run_id
    assert "wandb_error" not in first["provenance"]
    dirs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(dirs) == 1 and dirs[0].name.endswith(f"-{run_id}")
    assert (dirs[0] / f"run-{run_id}.wandb").exists()

    record = train(cell, run_dir)
    assert record["status"] == "completed" and record["provenance"]["wandb_run_id"] == run_id
    dirs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(dirs) == 2 and all(d.name.endswith(f"-{run_id}") for d in dirs)
    assert load_ckpt(run_dir)["wandb_run_id"] == run_id
