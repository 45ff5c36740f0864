"""The ResNet-RS recipe against the paper's numbers (reference/resnet_rs.md section 2, Table 8)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rsscale.config import RecipeConfig, cell_config, compose, rs_paper_regularization, validate_cell
from rsscale.models import build_model
from rsscale.train.ema import ModelEma
from rsscale.train.recipe import build_optimizer, lr_at, param_groups, peak_lr

# Table 8 as printed in the reference: (depth, train_res) -> (dropout, stochastic depth, RandAugment).
TABLE8 = {
    (50, 160): (0.25, 0.0, 10),
    (101, 160): (0.25, 0.0, 10),
    (101, 192): (0.25, 0.0, 15),
    (152, 192): (0.25, 0.0, 15),
    (152, 224): (0.25, 0.0, 15),
    (152, 256): (0.25, 0.0, 15),
    (200, 256): (0.25, 0.1, 15),
    (270, 256): (0.25, 0.1, 15),
    (350, 256): (0.25, 0.1, 15),
    (350, 320): (0.4, 0.1, 15),
    (420, 320): (0.4, 0.1, 15),
}


# ------------------------------------------------------------------------------------ LR schedule


def test_peak_lr_is_linear_in_batch():
    assert peak_lr(0.1, 4096) == pytest.approx(1.6)
    assert peak_lr(0.1, 256) == pytest.approx(0.1)
    assert peak_lr(0.2, 128) == pytest.approx(0.1)
    rs = cell_config(compose(["recipe=rs_paper", "data=synthetic"]))["recipe"]
    assert peak_lr(rs["lr_base"], rs["batch_size"]) == pytest.approx(1.6)
    assert (rs["warmup_epochs"], rs["lr_schedule"], rs["momentum"]) == (5, "cosine", 0.9)
    assert (rs["weight_decay"], rs["label_smoothing"], rs["ema_decay"]) == (4e-5, 0.1, 0.9999)


def test_warmup_is_linear_then_cosine_decays_to_zero():
    total, warm, peak = 1000, 50, 1.6
    lr = [lr_at(s, total_steps=total, warmup_steps=warm, peak=peak) for s in range(total + 1)]
    # warmup: linear from peak/warm to peak, equal increments
    assert lr[0] == pytest.approx(peak / warm)
    assert lr[warm - 1] == pytest.approx(peak)
    steps = [b - a for a, b in zip(lr[: warm - 1], lr[1:warm])]
    assert all(d == pytest.approx(peak / warm) for d in steps)
    # cosine: peak right after warmup, half way down at the middle, 0 at the end, monotone
    assert lr[warm] == pytest.approx(peak)
    assert lr[warm + (total - warm) // 2] == pytest.approx(peak / 2, rel=1e-2)
    s = warm + 317
    assert lr[s] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 317 / (total - warm))))
    assert lr[total] == pytest.approx(0.0, abs=1e-12)
    assert lr[total - 1] < 1e-4 * peak
    assert all(a >= b for a, b in zip(lr[warm:], lr[warm + 1 :]))


def test_step_schedule_drops_tenfold_at_30_60_80_percent():
    total, peak = 1000, 0.4
    f = [lr_at(s, total_steps=total, warmup_steps=0, peak=peak, schedule="step") for s in range(total)]
    assert f[0] == f[299] == pytest.approx(peak)
    assert f[300] == f[599] == pytest.approx(peak * 0.1)
    assert f[600] == f[799] == pytest.approx(peak * 0.01)
    assert f[800] == f[999] == pytest.approx(peak * 0.001)
    # with warmup, the warmup comes first
    g = [lr_at(s, total_steps=total, warmup_steps=10, peak=peak, schedule="step") for s in range(total)]
    assert g[0] == pytest.approx(peak / 10) and g[9] == g[10] == pytest.approx(peak)
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_at(20, total_steps=total, warmup_steps=10, peak=peak, schedule="linear")


# ------------------------------------------------------------------------------ weight decay


def test_weight_decay_groups_exclude_only_batchnorm():
    model = build_model({"depth": 26, "width": 0.25, "stem": "small"}, num_classes=10, in_chans=3)
    groups = param_groups(model, 4e-5)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 4e-5 and groups[1]["weight_decay"] == 0.0
    kinds = {"bn": 0, "conv": 0, "se_weight": 0, "se_bias": 0, "fc": 0}
    for name, p in model.named_parameters():
        owner = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(owner, nn.BatchNorm2d):
            assert id(p) in no_decay and id(p) not in decay, name
            kinds["bn"] += 1
            continue
        assert id(p) in decay and id(p) not in no_decay, name
        if ".se." in name:
            kinds["se_weight" if name.endswith("weight") else "se_bias"] += 1
        elif isinstance(owner, nn.Linear):
            kinds["fc"] += 1
        else:
            kinds["conv"] += 1
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    assert all(kinds.values()), kinds  # every kind was seen
    assert kinds["fc"] == 2  # weight and bias
    # wd_on_bn puts everything in one decayed group; build_optimizer keeps the groups
    assert len(param_groups(model, 1e-4, wd_on_bn=True)) == 1
    recipe = RecipeConfig(weight_decay=4e-5, momentum=0.9, nesterov=False)
    opt = build_optimizer(model, recipe, 1.6, torch.device("cpu"))
    assert [g["weight_decay"] for g in opt.param_groups] == [4e-5, 0.0]
    assert all(g["momentum"] == 0.9 and g["lr"] == 1.6 for g in opt.param_groups)


# --------------------------------------------------------------------------------------- EMA


def test_ema_warmup_decay_and_bn_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 5, 5))  # materialise the lazy layer
    ema = ModelEma(model, decay=0.9999)
    expected = [min(0.9999, (1 + t) / (10 + t)) for t in range(5)]
    for t in range(5):
        assert ema.current_decay() == pytest.approx(expected[t])
        before = {k: v.clone() for k, v in ema.module.state_dict().items()}
        model.train()
        model(torch.randn(8, 3, 5, 5) * (t + 2) + t)  # moves BN running stats
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        d = expected[t]
        new = model.state_dict()
        for k, v in ema.module.state_dict().items():
            if v.dtype.is_floating_point:  # weights AND BN running mean/var
                assert torch.allclose(v, d * before[k] + (1 - d) * new[k], atol=1e-6), k
            else:
                assert torch.equal(v, new[k]), k  # num_batches_tracked is copied
    bn = ema.module[1]
    assert not torch.equal(bn.running_mean, torch.zeros(4)) and not torch.equal(bn.running_var, torch.ones(4))
    assert ModelEma(model, 0.9999).module.training is False  # evaluation copy
    late = ModelEma(model, 0.99)
    late.updates = 10_000
    assert late.current_decay() == 0.99


# ---------------------------------------------------------------------------------- Table 8


@pytest.mark.parametrize(("depth", "res"), sorted(TABLE8))
def test_rs_paper_regularization_matches_table8(depth, res):
    dropout, sd, ra = TABLE8[(depth, res)]
    reg = rs_paper_regularization(depth, res)
    assert reg == {"dropout": dropout, "drop_path_rate": sd, "randaugment_magnitude": ra}
    cell = cell_config(
        compose(
            [
                "model=resnet_rs",
                "recipe=rs_paper",
                f"model.depth={depth}",
                f"data.train_res={res}",
                "data=synthetic",
                "data.size=8192",  # more than one batch of 4096 after minival
            ]
        )
    )
    assert cell["model"]["dropout"] == dropout
    assert cell["model"]["drop_path_rate"] == sd
    assert cell["data"]["randaugment_magnitude"] == ra
    assert (cell["recipe"]["dropout"], cell["recipe"]["drop_path_rate"]) == (dropout, sd)
    assert cell["recipe"]["randaugment_magnitude"] == ra
    assert cell["recipe"]["label_smoothing"] == 0.1
    validate_cell(cell)


def test_rs_paper_explicit_values_win_over_auto():
    cell = cell_config(
        compose(
            ["model=resnet_rs", "recipe=rs_paper", "data=synthetic", "recipe.dropout=0.1", "model.depth=350"]
        )
    )
    assert cell["model"]["dropout"] == 0.1 and cell["model"]["drop_path_rate"] == 0.1


def test_label_smoothing_reaches_the_loss(monkeypatch, tmp_path):
    """train() builds its criterion with recipe.label_smoothing and uses it for every micro-batch."""
    from train_helpers import tiny_cell

    from rsscale.train.loop import train

    seen = []

    class SpyLoss(nn.CrossEntropyLoss):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(self)
            self.calls = 0

        def forward(self, x, y):
            self.calls += 1
            return super().forward(x, y)

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", SpyLoss)
    cell = tiny_cell("recipe.label_smoothing=0.3", "recipe.epochs=1", "runtime.max_steps=2")
    record = train(cell, tmp_path / "run")
    assert record["status"] == "completed"
    assert len(seen) == 1 and seen[0].label_smoothing == 0.3 and seen[0].calls == 2
