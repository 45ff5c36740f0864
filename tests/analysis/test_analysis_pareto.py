import numpy as np
import pandas as pd

from rsscale.analysis.pareto import frontier, mark_pareto, pareto_mask


def _brute(cost, val):
    n = len(cost)
    out = np.zeros(n, bool)
    for i in range(n):
        if not (np.isfinite(cost[i]) and np.isfinite(val[i])):
            continue
        dominated = False
        for j in range(n):
            if j == i or not (np.isfinite(cost[j]) and np.isfinite(val[j])):
                continue
            if cost[j] <= cost[i] and val[j] >= val[i] and (cost[j] < cost[i] or val[j] > val[i]):
                dominated = True
                break
        out[i] = not dominated
    return out


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = rng.integers(1, 40)
        cost = rng.integers(0, 10, n).astype(float)  # ties on purpose
        val = rng.integers(0, 10, n).astype(float)
        if n > 3:
            cost[0] = np.nan
        assert (pareto_mask(cost, val) == _brute(cost, val)).all()


def test_mark_pareto_per_epoch_budget():
    df = pd.DataFrame(
        {
            "dataset": ["a"] * 4,
            "epochs": [1.0, 1.0, 2.0, 2.0],
            "usable": [True, True, True, False],
            "top1": [0.8, 0.9, 0.85, 0.99],
            "flops": [1.0, 2.0, 5.0, 1.0],
            "train_step_s": [np.nan] * 4,
            "infer_s": [1.0] * 4,
            "params": [1.0, 1.0, 1.0, 1.0],
        }
    )
    m = mark_pareto(df)
    assert m["pareto_flops"].tolist() == [True, True, True, False]  # unusable cells never marked
    assert m["pareto_params"].tolist() == [False, True, True, False]
    assert not m["pareto_train_step_s"].any()
    assert frontier(df[df.epochs == 1.0], "flops")["top1"].tolist() == [0.8, 0.9]
