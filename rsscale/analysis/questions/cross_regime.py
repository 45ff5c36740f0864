"""Question: does the depth-vs-width winner depend on the training regime (the paper's first
recommendation)? Reads the depth-vs-width answer; the verdict rule is in
:func:`rsscale.analysis.regimes.cross_regime_verdict`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rsscale.analysis.mdfmt import ci, fmt, num
from rsscale.analysis.power import describe
from rsscale.analysis.questions.base import Answer, ResolveOption
from rsscale.analysis.questions.depth_width import undecided_option
from rsscale.analysis.regimes import cross_regime_verdict
from rsscale.analysis.regimes import label as regime_label
from rsscale.analysis.regimes import sentence as regime_sentence
from rsscale.analysis.study import Analysis


def markdown(an: Analysis) -> list[str]:
    """The training regimes (measured generalisation gap) and the cross-regime verdict."""
    regs, cross = an.regimes, an.cross_regime
    if not regs:
        return []
    L = ["\n### Training regimes and the cross-regime verdict\n"]
    L.append(
        "A regime is (epochs, training images). Its generalisation gap is top-1 on a clean, "
        "un-augmented training subset the size of minival minus minival top-1 (median over its "
        "cells [range]): a large gap means the regime over-fits.\n"
    )
    L.append("| regime | epochs | training images | cells | generalisation gap [range] | depth vs width |")
    L.append("|---|---|---|---|---|---|")
    for k, info in regs.items():
        v = an.depth_vs_width.get(k, {})
        conf = f" ({fmt(v.get('confidence'), 2)})" if v.get("confidence") is not None else ""
        L.append(
            f"| {k} | {num(info['epochs'])} | {info.get('train_size') or '-'} | {info['n_cells']} | "
            f"{fmt(info.get('generalization_gap'))} {ci(info.get('generalization_gap_range'))} | "
            f"{v.get('winner', '-')}{conf} |"
        )
    if cross.get("verdict"):
        L.append(f"\n**Across regimes: {regime_sentence(cross)}.**")
        for k, p in (cross.get("to_resolve") or {}).items():
            more = describe(p or {})
            if more:
                L.append(f"- to resolve {regime_label(regs[k]) if k in regs else k}: {more}.")
    return L


class CrossRegime:
    """Same winner in every regime, or depth where it over-fits and width where it does not."""

    name = "cross_regime"

    def answer(self, an: Analysis, df: pd.DataFrame) -> Answer:
        an.cross_regime = cross_regime_verdict(an.depth_vs_width, an.regimes)
        v = an.cross_regime
        lines = [f"across regimes: {regime_sentence(v)}"] if len(an.regimes) > 1 else []
        numbers = {**v, "depth_vs_width": an.depth_vs_width}
        return Answer(self.name, v["verdict"], v.get("confidence"), numbers, lines, markdown(an))

    def resolve(self, answer: Answer) -> ResolveOption | None:
        if answer.verdict != "inconclusive":
            return None
        todo = list(answer.numbers.get("to_resolve") or {})
        return undecided_option(self.name, answer.numbers["depth_vs_width"], todo)

    def figures(self, an: Analysis, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]:
        return []  # the depth-vs-width figures show each regime


QUESTION = CrossRegime()
