"""The Evaluator on its own: which epochs evaluate minival, the record's `final` with and without
EMA and val, and the measured cost (latency through the loop's TrainStep)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rsscale.config import CellConfig, LoggerConfig, RecipeConfig, RuntimeConfig
from rsscale.data import DataConfig
from rsscale.models import ResNetRSConfig
from rsscale.train.device import RunEnv
from rsscale.train.distributed import DistInfo
from rsscale.train.ema import ModelEma
from rsscale.train.evaluate import Evaluator, evaluate

ENV = RunEnv(DistInfo(), torch.device("cpu"), None, 0)


class Fixed(nn.Module):
    """Predicts class `k` for every input, then 0, 1, 2, ... (no ties)."""

    def __init__(self, k: int, classes: int = 10):
        super().__init__()
        self.logits = nn.Parameter(-torch.arange(classes, dtype=torch.float32))
        with torch.no_grad():
            self.logits[k] = 1.0

    def forward(self, x):
        return self.logits.expand(len(x), -1)


class Stream(list):
    """An eval stream with the size the record reports."""

    @property
    def num_samples(self) -> int:
        return sum(len(y) for _, y in self)


def stream(labels):
    return Stream((torch.zeros(len(y), 3), torch.tensor(y)) for y in labels)


def cfg(epochs=5, every=2, **runtime):
    """The typed cell the Evaluator reads: a tiny model at 16 px, the given epochs and runtime."""
    rt = RuntimeConfig(**{"eval_every_epochs": every, "measure_latency": False, **runtime})
    return CellConfig(
        model=ResNetRSConfig(depth=26, width=0.25, stem="small"),
        data=DataConfig(train_res=16, eval_res=16),
        recipe=RecipeConfig(epochs=epochs),
        runtime=rt,
        logger=LoggerConfig(),
    )


DATA = SimpleNamespace(
    minival=stream([[3, 3, 1, 2]]), val=stream([[3, 0], [3, 3]]), in_chans=3, num_classes=10
)


def test_evaluate_counts_top1_over_every_batch():
    assert evaluate(Fixed(3), DATA.val, None, ENV.device) == {"top1": 0.75, "top5": 1.0}
    assert evaluate(Fixed(3), [], None, ENV.device) == {"top1": None, "top5": None}  # no minival: missing


def test_minival_every_n_epochs_and_after_the_last():
    ev = Evaluator(cfg(epochs=5, every=2), ENV, DATA, Fixed(3))
    evaluated = {e: ev.after_epoch(e) for e in range(1, 6)}
    assert [e for e, m in evaluated.items() if m] == [2, 4, 5]
    assert evaluated[2] == {"minival_top1": 0.5, "minival_top5": 1.0}


def test_final_without_ema_uses_the_raw_weights():
    ev = Evaluator(cfg(), ENV, DATA, Fixed(3))
    final = ev.final([{"minival_top1": 0.2}, {"minival_top1": None}, {"minival_top1": 0.4}])
    assert (final["top1"], final["val_top1"], final["val_top1_ema"]) == (0.75, 0.75, None)
    assert final["minival_top1"] == 0.5 and final["best_minival_top1"] == 0.4


def test_final_with_ema_headlines_the_ema_weights_and_minival_only_has_no_val():
    model = Fixed(3)
    ema = ModelEma(Fixed(0), decay=0.9)  # the EMA predicts 0: another answer than the raw model
    final = Evaluator(cfg(), ENV, DATA, model, ema).final([{"minival_top1_ema": 0.1, "minival_top1": 0.9}])
    assert (final["top1"], final["val_top1_ema"], final["val_top1"]) == (0.25, 0.25, 0.75)
    assert final["best_minival_top1"] == 0.1  # the headline weights' minival
    no_val = SimpleNamespace(**{**vars(DATA), "val": None})
    final = Evaluator(cfg(), ENV, no_val, model, ema).final([])
    assert final["top1"] is None and final["val_top1"] is None and final["minival_top1_ema"] == 0.0


def test_final_gives_the_generalisation_gap_on_the_clean_training_subset():
    # minival 3,3,1,2 -> 0.5 for Fixed(3); training subset 3,3,3,0 -> 0.75: gap 0.25
    data = SimpleNamespace(**{**vars(DATA), "train_eval": stream([[3, 3], [3, 0]])})
    final = Evaluator(cfg(), ENV, data, Fixed(3)).final([])
    assert (final["train_top1"], final["minival_top1"]) == (0.75, 0.5)
    assert final["generalization_gap"] == pytest.approx(0.25) and final["train_eval_images"] == 4
    assert (final["minival_every_epochs"], final["val_images"]) == (2, 4)  # records say which
    # EMA on: the gap is the headline (EMA) weights' (Fixed(0): train 0.25, minival 0.0)
    final = Evaluator(cfg(), ENV, data, Fixed(3), ModelEma(Fixed(0), decay=0.9)).final([])
    assert (final["train_top1"], final["generalization_gap"]) == (0.25, 0.25)
    no_minival = SimpleNamespace(**{**vars(DATA), "train_eval": None})
    final = Evaluator(cfg(), ENV, no_minival, Fixed(3)).final([])
    assert final["train_top1"] is None and final["generalization_gap"] is None


def test_cost_measures_latency_with_the_train_step():
    c = cfg(epochs=1, measure_latency=True, latency_batch=2, latency_iters=1, channels_last=False)
    hist = [{"images_per_s": 10.0}, {"images_per_s": 30.0}]
    cost = Evaluator(c, ENV, DATA, Fixed(3)).cost(hist)
    assert cost["train_step_s"] > 0 and cost["infer_s"] > 0 and cost["latency_batch"] == 2
    assert cost["images_per_s"] == pytest.approx(20.0) and cost["peak_mem_bytes"] > 0
    off = Evaluator(cfg(epochs=1), ENV, DATA, Fixed(3)).cost([])
    assert "train_step_s" not in off and off["images_per_s"] is None
