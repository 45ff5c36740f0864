"""ResNet-RS model, counting and timm compatibility. Big models are built on the meta device (shapes only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rsscale.models import (
    DEPTH_BLOCKS,
    DropPath,
    build_model,
    count_flops,
    count_params,
    load_timm_state_dict,
    make_divisible,
    model_cost,
    resnet_rs,
    scale_width,
    validate_model_cfg,
)

timm = pytest.importorskip("timm")

# Reference table, /work/shared/reference/resnet_rs.md section 1 (width 1.0, 1000 classes).
REF_PARAMS = {
    50: 35_691_912,
    101: 63_618_696,
    152: 86_621_576,
    200: 93_209_992,
    270: 129_861_448,
    350: 163_956_168,
    420: 191_891_656,
}
REF_GFLOPS = [
    (50, 160, 4.56),
    (101, 160, 8.36),
    (101, 192, 12.02),
    (152, 192, 17.49),
    (152, 224, 23.79),
    (152, 256, 31.06),
    (200, 256, 40.19),
    (270, 256, 53.90),
    (350, 256, 68.75),
    (350, 320, 107.37),
    (420, 320, 127.88),
]
STUDY_DEPTHS = (26, 50, 101, 200, 300, 350, 400)
STUDY_WIDTHS = (0.25, 0.5, 1.0, 1.5, 2.0)


def meta_model(*args, **kwargs):
    with torch.device("meta"):
        return resnet_rs(*args, **kwargs)


def blocks_of(model):
    return [b for k in range(1, 5) for b in model.get_submodule(f"layer{k}")]


# ------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize("depth", sorted(REF_PARAMS))
def test_param_counts_match_reference(depth):
    assert count_params(meta_model(depth)) == REF_PARAMS[depth]
    assert model_cost({"depth": depth}, 160, 1000, 3)["params"] == REF_PARAMS[depth]


def test_param_count_matches_timm_resnetrs50():
    with torch.device("meta"):
        ref = timm.create_model("resnetrs50", pretrained=False)
    assert count_params(meta_model(50)) == count_params(ref) == REF_PARAMS[50]


@pytest.mark.parametrize(("depth", "res", "gflops"), REF_GFLOPS)
def test_flops_match_reference(depth, res, gflops):
    flops = model_cost({"depth": depth}, res, 1000, 3)["flops_per_image"]
    assert flops / 1e9 == pytest.approx(gflops, rel=0.01)


@pytest.mark.parametrize(
    ("cfg", "res", "num_classes", "in_chans"),
    [
        ({"depth": 101}, 160, 1000, 3),
        ({"blocks": [3, 1, 5, 2], "width": 0.5, "stem": "paper", "resnet_d": False}, 96, 100, 3),
        ({"depth": 26, "width": 0.25, "stem": "small", "se_ratio": 0.0}, 28, 10, 1),
    ],
)
def test_model_cost_equals_full_count(cfg, res, num_classes, in_chans):
    """model_cost extrapolates from a 2-blocks-per-stage model; it must equal counting the whole network."""
    with torch.device("meta"):
        full = build_model(cfg, num_classes, in_chans)
    cost = model_cost(cfg, res, num_classes, in_chans)
    assert cost == {"params": count_params(full), "flops_per_image": count_flops(full, res, in_chans)}


def test_count_flops_leaves_real_model_untouched():
    model = resnet_rs(blocks=[1, 1, 1, 1], width=0.25, num_classes=10, stem="small").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_flops(model, 32) > 0
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------ architecture


def test_study_grid_builds_and_widths_scale():
    for depth in STUDY_DEPTHS:
        for w in STUDY_WIDTHS:
            m = meta_model(depth, w)
            f = tuple(int(c * w) for c in (64, 128, 256, 512))  # exact for the study widths
            assert m.blocks_per_stage == DEPTH_BLOCKS[depth]
            assert m.stage_widths == f
            assert m.stem_widths == (int(32 * w), int(32 * w), int(64 * w))
            assert m.stem.conv4.out_channels == int(64 * w)
            assert m.feature_dim == m.fc.in_features == 4 * f[3]
            for k in range(4):
                stage = m.get_submodule(f"layer{k + 1}")
                assert len(stage) == DEPTH_BLOCKS[depth][k]
                for b in (stage[0], stage[-1]):
                    assert b.conv2.out_channels == f[k]
                    assert b.conv3.out_channels == 4 * f[k]
                    assert b.se.fc1.out_channels == f[k]  # SE ratio 0.25 of 4f
                assert stage[0].downsample is not None and stage[-1].downsample is None


def test_width_rounding_rule():
    assert scale_width(64, 1.0) == 64
    assert scale_width(32, 0.25) == 8
    assert scale_width(32, 0.1) == 8  # never below 8
    assert scale_width(64, 0.3) == 24  # 19.2 -> 16 would lose > 10%, so 24
    assert scale_width(512, 1.25) == 640
    for w in (0.13, 0.7, 1.1, 1.37, 3.3):
        for c in (32, 64, 512):
            s = scale_width(c, w)
            assert s % 8 == 0 and s >= 8 and s >= 0.9 * c * w and abs(s - c * w) <= 8
    assert make_divisible(19.2, 8, round_limit=0.0) == 16


@pytest.mark.parametrize(("stem", "res", "out_hw"), [("released", 64, 2), ("paper", 64, 2), ("small", 32, 4)])
def test_stem_strides(stem, res, out_hw):
    m = meta_model(26, 0.5, num_classes=10, stem=stem)
    x = torch.empty(2, 3, res, res, device="meta")
    assert m.forward_features(x).shape == (2, 1024, out_hw, out_hw)
    assert m(x).shape == (2, 10)
    assert hasattr(m.stem, "conv4") == (stem == "released")
    assert m.layer1[0].conv2.stride == ((2, 2) if stem == "paper" else (1, 1))


def test_shortcut_variants():
    m = meta_model(26, 0.25)
    ds = m.layer2[0].downsample
    assert isinstance(ds.pool, nn.AvgPool2d) and ds.pool.ceil_mode and not ds.pool.count_include_pad
    assert ds.conv.stride == (1, 1)
    assert isinstance(m.layer1[0].downsample.pool, nn.Identity)  # c2: stride 1, 1x1 conv + BN
    classic = meta_model(26, 0.25, resnet_d=False).layer2[0].downsample
    assert isinstance(classic.pool, nn.Identity) and classic.conv.stride == (2, 2)


def test_init_and_no_conv_biases():
    m = resnet_rs(blocks=[1, 1, 1, 1], width=0.5, num_classes=1000, stem="small")
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            assert (mod.bias is not None) == (".se." in name), name
    assert all(torch.all(b.bn3.weight == 0) for b in blocks_of(m))
    assert torch.all(m.fc.bias == 0) and m.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    m2 = resnet_rs(blocks=[1, 1, 1, 1], width=0.25, zero_init_last_bn=False, bn_eps=1e-3, bn_momentum=1.0)
    assert torch.all(m2.layer1[0].bn3.weight == 1)
    assert m2.layer1[0].bn1.eps == 1e-3 and m2.layer1[0].bn1.momentum == 1.0
    m2.reset_classifier(7)
    assert m2.num_classes == 7 and m2.fc.out_features == 7
    assert isinstance(resnet_rs(blocks=[1, 1, 1, 1], width=0.25, se_ratio=0).layer1[0].se, nn.Identity)


# ------------------------------------------------------------------------------------ timm weights


def _perturb_bn(model: nn.Module) -> None:
    """Random BN statistics and affine parameters, so zero-init gammas do not hide the residual branch."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(torch.rand(n, generator=g) * 0.3 + 0.1)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@pytest.mark.parametrize("depth", [50, 101])
def test_matches_timm_outputs(depth):
    torch.manual_seed(0)
    ref = timm.create_model(f"resnetrs{depth}", pretrained=False).eval()
    _perturb_bn(ref)
    model = resnet_rs(depth).eval()
    load_timm_state_dict(model, ref.state_dict())
    assert all(b.bn3.weight.min() > 0 for b in blocks_of(model))  # every residual branch contributes
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert expected.abs().max() > 0.1
    assert (got - expected).abs().max().item() <= 1e-5


def test_load_timm_rejects_other_architectures():
    with torch.device("meta"):
        model = resnet_rs(50)
        other = {
            "resnet50": timm.create_model("resnet50", pretrained=False).state_dict(),
            "resnetrs101": timm.create_model("resnetrs101", pretrained=False).state_dict(),
            "resnetrs50 x10 classes": timm.create_model("resnetrs50", num_classes=10).state_dict(),
        }
    with pytest.raises(ValueError, match=r"depth 50 width 1\.0.*unexpected keys.*conv1\.weight"):
        load_timm_state_dict(model, other["resnet50"])
    with pytest.raises(ValueError, match=r"depth 50.*unexpected keys \(timm names\): layer3\.[1-9]\d\."):
        load_timm_state_dict(model, other["resnetrs101"])
    with torch.device("meta"):
        paper_stem = resnet_rs(50, stem="paper")
    with pytest.raises(ValueError, match=r"stem 'paper'.*unexpected keys \(timm names\): maxpool\.0\.weight"):
        load_timm_state_dict(paper_stem, other["resnetrs50 x10 classes"])
    with pytest.raises(ValueError, match=r"shape mismatches .*fc\.weight \(10, 2048\) vs \(1000, 2048\)"):
        load_timm_state_dict(model, other["resnetrs50 x10 classes"])


# ------------------------------------------------------------------------------------ stochastic depth


def test_stochastic_depth_rates():
    m = meta_model(50, drop_path_rate=0.1)
    for k, rate in enumerate([0.04, 0.06, 0.08, 0.10]):
        stage = m.get_submodule(f"layer{k + 1}")
        assert [b.drop_path.drop_prob for b in stage] == pytest.approx([rate] * len(stage))
    # linear schedule = timm's per-block ramp
    with torch.device("meta"):
        ref = timm.create_model("resnetrs50", pretrained=False, drop_path_rate=0.1)
    ref_rates = [b.drop_path.drop_prob if b.drop_path is not None else 0.0 for b in blocks_of(ref)]
    lin = meta_model(50, drop_path_rate=0.1, drop_path_schedule="linear")
    assert [b.drop_path.drop_prob for b in blocks_of(lin)] == pytest.approx(ref_rates)
    assert ref_rates[0] == 0.0 and ref_rates[-1] == pytest.approx(0.1)


def test_drop_path_eval_identity_and_train_unbiased():
    torch.manual_seed(0)
    dp = DropPath(0.3)
    x = torch.ones(8192, 4, 2, 2)
    assert dp.eval()(x) is x
    y = dp.train()(x)
    per_sample = y.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1])  # whole sample kept or dropped
    assert per_sample[:, 0].unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert (per_sample[:, 0] == 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)  # std of the mean ~ 0.007
    # a model with drop path is deterministic in eval
    m = resnet_rs(blocks=[1, 1, 1, 1], width=0.25, num_classes=10, stem="small", drop_path_rate=0.5).eval()
    xi = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m(xi), m(xi))


# ------------------------------------------------------------------------------------ training


def _separable_data(n: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = 0.3 * torch.randn(n, 1, 32, 32, generator=g)
    for i, k in enumerate(y.tolist()):
        r, c = divmod(k, 5)
        x[i, 0, 4 + 14 * r : 12 + 14 * r, 2 + 6 * c : 7 + 6 * c] += 2.0
    return x.contiguous(memory_format=torch.channels_last), y


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_few_training_steps_reduce_loss(precision):
    torch.manual_seed(0)
    model = resnet_rs(26, 0.25, num_classes=10, in_chans=1, stem="small", drop_path_rate=0.1, dropout=0.1)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _separable_data()
    losses = []
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.3, losses  # about 2.30 -> 1.64 in both precisions


def _tiny_model():
    cfg = {"blocks": [1, 1, 1, 1], "width": 0.25, "stem": "small", "drop_path_rate": 0.2}
    return build_model(cfg, num_classes=10, in_chans=1)


def _compile_step(backend: str) -> None:
    torch.manual_seed(0)
    model = _tiny_model().train()
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # fullgraph: any graph break fails
    x = torch.randn(4, 1, 16, 16)
    compiled(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_compile_fullgraph_forward_backward():
    _compile_step("aot_eager")


@pytest.mark.slow
def test_compile_inductor_forward_backward():
    _compile_step("inductor")


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 37}, r"model\.depth=37 is not a ResNet-RS depth; allowed: 26, 50, .*model\.blocks"),
        ({"blocks": [3, 4, 6]}, r"model\.blocks"),
        ({"blocks": [3, 0, 6, 3]}, r"model\.blocks"),
        ({"width": 0}, r"model\.width"),
        ({"width": -1.0}, r"model\.width"),
        ({"stem": "tiny"}, r"model\.stem='tiny' is unknown; allowed: released, paper, small"),
        ({"drop_path_schedule": "cosine"}, r"model\.drop_path_schedule.*allowed: stage, linear"),
        ({"se_ratio": -0.1}, r"model\.se_ratio"),
        ({"dropout": 1.0}, r"model\.dropout"),
        ({"drop_path_rate": -0.1}, r"model\.drop_path_rate"),
        ({"bn_momentum": 0.0}, r"model\.bn_momentum"),
        ({"bn_eps": 0.0}, r"model\.bn_eps"),
        ({"resnet_d": "yes"}, r"model\.resnet_d"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        validate_model_cfg(kwargs)
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        resnet_rs(**kwargs)


def test_build_model_from_contract_cfg():
    cfg = {
        "name": "resnet_rs",
        "depth": 50,
        "blocks": None,
        "width": 1.0,
        "stem": "released",
        "se_ratio": 0.25,
        "drop_path_rate": 0.0,
        "drop_path_schedule": "stage",
        "dropout": 0.0,
        "resnet_d": True,
        "zero_init_last_bn": True,
        "bn_eps": 1.0e-5,
        "bn_momentum": 0.1,
    }
    validate_model_cfg(cfg)
    with torch.device("meta"):
        m = build_model(cfg, num_classes=1000, in_chans=3)
        m_blocks = build_model({"depth": 7, "blocks": (1, 2, 1, 1), "width": 0.5}, 10, 1)  # depth = label
    assert count_params(m) == REF_PARAMS[50]
    assert m_blocks.blocks_per_stage == (1, 2, 1, 1) and m_blocks.depth == 7
    assert m_blocks.stem.conv1.in_channels == 1 and m_blocks.num_classes == 10
    with pytest.raises(ValueError, match=r"unknown model config key\(s\) \['dpeth'\]"):
        validate_model_cfg({"dpeth": 50})
    with pytest.raises(ValueError, match=r"unknown model config key"):
        build_model({"dpeth": 50}, 10, 3)
    with pytest.raises(ValueError, match=r"num_classes"):
        validate_model_cfg({"depth": 50}, num_classes=0)
