"""Training regimes and the cross-regime depth-vs-width verdict (the paper's first recommendation).

ResNet-RS recommends scaling depth where over-fitting can occur (long training on the data) and
width otherwise. A *regime* is an (epoch budget, training-set size) pair: two regimes with the
same epoch count but different data are different regimes and never share a scaling path. The
regime is measured, not assumed: each regime reports the median generalisation gap of its cells
(top-1 on a clean training subset minus minival top-1).

The cross-regime verdict reads the per-regime depth-vs-width verdicts:

- ``depends on regime``: two regimes are decided (``depth``, ``width`` or ``equivalent``) and
  differ; its confidence is the product of the decided regimes' confidences (their cells are
  disjoint, so their bootstraps are independent);
- ``same winner``: every regime is decided and they agree;
- ``inconclusive``: fewer than two regimes, or any regime undecided; the regimes' power analyses
  say what would resolve it.

It is compared with the paper by the measured gaps: the paper expects depth in the regime with the
largest gap and width in the one with the smallest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

DECIDED = ("depth", "width", "equivalent")


def _num_key(v: float) -> str:
    v = float(v)
    return str(int(v)) if v == int(v) else f"{v:g}"


def regime_key(epochs: float, train_size: float | None, with_size: bool) -> str:
    """``"4"`` (one training-set size in the table) or ``"4ep-4000img"``."""
    if not with_size:
        return _num_key(epochs)
    if train_size is None or not math.isfinite(float(train_size)):
        return f"{_num_key(epochs)}ep"
    return f"{_num_key(epochs)}ep-{int(train_size)}img"


def regime_keys(df: pd.DataFrame) -> pd.Series:
    """Each row's regime key. Keys name the training-set size whenever the table holds more than
    one, so a table of one size keeps its plain epoch keys."""
    if "train_size" in df:
        sizes = pd.to_numeric(df["train_size"], errors="coerce")
    else:
        sizes = pd.Series(np.nan, df.index)
    with_size = sizes.dropna().nunique() > 1
    return pd.Series(
        [regime_key(e, n, with_size) for e, n in zip(df["epochs"].astype(float), sizes.astype(float))],
        index=df.index,
        dtype=object,
    )


def regime_order(df: pd.DataFrame, keys: pd.Series) -> list[str]:
    """Regime keys by (epochs, training-set size)."""
    sizes = pd.to_numeric(df["train_size"], errors="coerce") if "train_size" in df else None
    first: dict[str, tuple[float, float]] = {}
    for i, k in keys.items():
        n = float(sizes[i]) if sizes is not None and pd.notna(sizes[i]) else -1.0
        first.setdefault(k, (float(df.at[i, "epochs"]), n))
    return sorted(first, key=lambda k: first[k])


def regime_info(df: pd.DataFrame, keys: pd.Series) -> dict[str, dict[str, Any]]:
    """Per regime: epochs, training-set size, cells and the measured generalisation gap (median
    and range over its usable cells; None when no record has one)."""
    out: dict[str, dict[str, Any]] = {}
    for k in regime_order(df, keys):
        g = df[keys == k]
        sizes = pd.to_numeric(g["train_size"], errors="coerce").dropna() if "train_size" in g else []
        gaps = (
            pd.to_numeric(g["generalization_gap"], errors="coerce").dropna()
            if "generalization_gap" in g
            else pd.Series([], dtype=float)
        )
        out[k] = {
            "epochs": float(g["epochs"].iloc[0]),
            "train_size": int(sizes.iloc[0]) if len(sizes) else None,
            "n_cells": int(len(g)),
            "generalization_gap": float(gaps.median()) if len(gaps) else None,
            "generalization_gap_range": [float(gaps.min()), float(gaps.max())] if len(gaps) else None,
        }
    return out


def label(info: dict[str, Any]) -> str:
    """``4 epochs x 4000 images`` (or ``4 epochs``)."""
    e = float(info["epochs"])
    text = f"{_num_key(e)} epoch" + ("" if e == 1 else "s")
    return text + (f" x {info['train_size']} images" if info.get("train_size") is not None else "")


def cross_regime_verdict(
    by_regime: dict[str, dict[str, Any]], info: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The cross-regime verdict from the per-regime depth-vs-width entries (FLOPs comparison)."""
    regimes = [k for k in by_regime if k in info] or list(by_regime)
    per = {
        k: {
            "winner": by_regime[k].get("winner"),
            "confidence": by_regime[k].get("confidence"),
            "leader": by_regime[k].get("leader"),
            "generalization_gap": (info.get(k) or {}).get("generalization_gap"),
            "label": label(info[k]) if k in info else k,
        }
        for k in regimes
    }
    out: dict[str, Any] = {"regimes": per, "paper": None}
    if len(regimes) < 2:
        out.update(verdict="inconclusive", confidence=None, reason="one training regime only")
        return out
    undecided = [k for k in regimes if per[k]["winner"] not in DECIDED]
    decided = [k for k in regimes if k not in undecided]
    winners = {per[k]["winner"] for k in decided}
    conf = float(np.prod([per[k]["confidence"] or 0.0 for k in decided])) if decided else None
    if undecided:
        out.update(
            verdict="inconclusive",
            confidence=None,
            reason="undecided in " + ", ".join(per[k]["label"] for k in undecided),
            to_resolve={k: by_regime[k].get("power") for k in undecided},
        )
        if len(winners) > 1:  # already different where decided: any answer elsewhere keeps that
            out.update(verdict="depends on regime", confidence=conf, reason=None)
    elif len(winners) == 1:
        out.update(verdict="same winner", winner=winners.pop(), confidence=conf)
    else:
        out.update(verdict="depends on regime", confidence=conf)
    if out["verdict"] == "depends on regime":
        out["wins"] = {per[k]["label"]: per[k]["winner"] for k in decided}
    out["paper"] = _against_paper(out, per, decided)
    return out


def _against_paper(out: dict[str, Any], per: dict[str, dict[str, Any]], decided: list[str]) -> str | None:
    """What the paper predicts for the measured regimes, and whether the data agree."""
    gaps = {k: per[k]["generalization_gap"] for k in per if per[k]["generalization_gap"] is not None}
    if len(gaps) < 2 or out["verdict"] == "inconclusive":
        return None
    over = max(gaps, key=lambda k: gaps[k])
    under = min(gaps, key=lambda k: gaps[k])
    expect = (
        f"depth where it over-fits most ({per[over]['label']}), "
        f"width where it over-fits least ({per[under]['label']})"
    )
    got = {k: per[k]["winner"] for k in decided}
    if got.get(over) == "depth" and got.get(under) == "width":
        return f"agrees with the paper: {expect}"
    found = ", ".join(f"{per[k]['winner']} at {per[k]['label']}" for k in decided)
    return f"contradicts the paper, which expects {expect}; Fashion-MNIST gives {found}"


def sentence(v: dict[str, Any]) -> str:
    """One line for the report and the CLI."""
    conf = v.get("confidence")
    c = f" (confidence {conf:.2f})" if conf is not None else ""
    if v["verdict"] == "depends on regime":
        text = "depends on regime: " + "; ".join(f"{w} at {lab}" for lab, w in v["wins"].items()) + c
    elif v["verdict"] == "same winner":
        text = f"same winner: {v['winner']} in every regime{c}"
    else:
        text = f"inconclusive: {v.get('reason')}"
    return text + (f"; {v['paper']}" if v.get("paper") else "")
