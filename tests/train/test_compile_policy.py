"""`runtime.compile=auto`: the cost model compiles long cells and leaves short ones eager."""

from __future__ import annotations

import dataclasses

import torch

from rsscale.config import RuntimeConfig
from rsscale.train.compile_policy import COMPILE_S, EAGER_FLOPS, decide_compile

CPU = torch.device("cpu")


def test_explicit_choice_wins():
    assert decide_compile(RuntimeConfig(compile=True), CPU, 1.0) == (True, "runtime.compile=true")
    assert decide_compile(RuntimeConfig(compile=False), CPU, 1e30) == (False, "runtime.compile=false")


def test_auto_compiles_only_when_training_pays_for_it():
    rt = RuntimeConfig(compile="auto", compile_payback=10.0, threads=1)
    pays = 10.0 * COMPILE_S["cpu"] * EAGER_FLOPS["cpu"]  # FLOPs that train exactly 10x the compile time
    on, why = decide_compile(rt, CPU, pays * 1.01)
    assert on and why.startswith("auto: expected training") and ">= 10 x compile" in why
    on, why = decide_compile(rt, CPU, pays * 0.99)
    assert not on and "< 10 x compile" in why
    # two threads train twice as fast: the same cell no longer pays
    assert not decide_compile(dataclasses.replace(rt, threads=2), CPU, pays * 1.5)[0]
    # the default embedded cell (RS-26 x0.25 @20 px, 3 epochs of 57,624 images) stays eager on a CPU
    default_cell_flops = 3 * 41_001_216 * 57_624 * 3
    assert not decide_compile(RuntimeConfig(compile="auto", threads=2), CPU, default_cell_flops)[0]
