"""Question: does the compute-optimal resolution grow more slowly than EfficientNet's compound
rule (the paper's second recommendation)? (The estimates:
:mod:`rsscale.analysis.questions.resolution_estimate`.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsscale.analysis import plots
from rsscale.analysis.mdfmt import ci, fmt
from rsscale.analysis.power import describe
from rsscale.analysis.questions.base import Answer, ResolveOption, nearest_option
from rsscale.analysis.questions.resolution_estimate import resolution_recommendation
from rsscale.analysis.study import MEASURES, Analysis


def markdown(an: Analysis) -> list[str]:
    """The report's resolution section: k, its interval, the form favoured, per epoch budget."""
    rs, st = an.resolution, an.settings
    L: list[str] = []
    L.append("\n### Resolution\n")
    fr = rs.get("frontier") or {}
    qd = rs.get("quadratic") or {}
    L.append(
        f"Compute-optimal resolution ~ FLOPs^k: k = **{fmt(rs.get('exponent'))}**, "
        f"{fmt(st.ci_level, 2)} CI {ci(rs.get('ci'))} (joint saturating law in depth, width and "
        f"resolution, additive and product forms weighed by held-out error; the data favour: "
        f"**{(rs.get('form') or {}).get('favoured', '-')}**); quadratic-surface cross-check "
        f"{fmt(qd.get('exponent'))} {ci(qd.get('ci'))}. "
        f"EfficientNet compound rule: {fmt(rs['efficientnet_exponent'])} (B0-B7 table: "
        f"{fmt(rs['efficientnet_table_exponent'])}). Verdict: **{rs.get('verdict')}**"
        f" (confidence {fmt(rs.get('confidence'), 2)})."
        + (f" Reason: {rs['reason']}." if rs.get("reason") else "")
        + (f" Power: {describe(rs['power'], 'in k')}." if rs.get("power") else "")
        + "\n"
    )
    if fr.get("exponent") is not None:
        L.append(
            f"Diagnostic, not used for the verdict: the slope over the {fr.get('n_frontier_cells')} "
            f"Pareto-frontier cells is {fmt(fr['exponent'])} {ci(fr.get('ci'))}; the grid's own "
            f"geometry exponent is {fmt(fr.get('grid_exponent'))}, toward which the frontier slope is "
            "pulled where the grid binds the optimum.\n"
        )
    if rs.get("by_epochs"):
        L.append(
            "| epochs | k | CI | form favoured (weight of product) | k additive | CI | k product | CI "
            "| k (quadratic) | CI | verdict | cells | axes | note |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for e, x in rs["by_epochs"].items():
            qx = x.get("quadratic") or {}
            fm = x.get("form") or {}
            fa = (fm.get("forms") or {}).get("additive") or {}
            fp = (fm.get("forms") or {}).get("product") or {}
            wp = (fm.get("weights") or {}).get("product")
            L.append(
                f"| {e} | {fmt(x.get('exponent'))} | {ci(x.get('ci'))} | {fm.get('favoured', '-')} "
                f"({fmt(wp, 2)}) | {fmt(fa.get('exponent'))} | {ci(fa.get('ci'))} | "
                f"{fmt(fp.get('exponent'))} | {ci(fp.get('ci'))} | {fmt(qx.get('exponent'))} | "
                f"{ci(qx.get('ci'))} | {x.get('verdict', '-')} | {x.get('n_cells', '-')} | "
                f"{', '.join(x.get('axes', [])) or '-'} | {x.get('reason', '')} |"
            )
    if rs.get("time"):
        t = rs["time"]
        L.append(
            "\nAgainst measured train-step time instead of FLOPs: "
            f"k = {fmt(t.get('exponent'))} {ci(t.get('ci'))}.\n"
        )
    return L


def summary(an: Analysis) -> list[str]:
    """``analyze``'s line: k against EfficientNet's rule, the verdict and the form favoured."""
    r = an.resolution
    k = r.get("exponent")
    if k is None:
        return [f"resolution: {r.get('verdict')} ({r.get('reason')})"]
    return [
        f"resolution: exponent {k:.3f} vs EfficientNet {r['efficientnet_exponent']:.3f}: {r.get('verdict')}"
        f" (joint-law form favoured: {(r.get('form') or {}).get('favoured', '-')})"
    ]


class Resolution:
    """The exponent k of the compute-optimal resolution ~ FLOPs^k against 0.2016."""

    name = "resolution"

    def answer(self, an: Analysis, df: pd.DataFrame) -> Answer:
        an.resolution = resolution_recommendation(an, df)
        r = an.resolution
        return Answer(self.name, r["verdict"], r.get("confidence"), r, summary(an), markdown(an))

    def resolve(self, answer: Answer) -> ResolveOption | None:
        if answer.verdict != "inconclusive":
            return None
        budgets = tuple(
            k for k, v in (answer.numbers.get("by_epochs") or {}).items() if v.get("exponent") is not None
        )
        return nearest_option(self.name, answer.numbers.get("power"), budgets, ())

    def figures(self, an: Analysis, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]:
        files: list[str] = []
        for m in MEASURES:
            if np.isfinite(df[m].to_numpy(float)).any():
                files += plots.resolution_paths(an, df, m, out_dir, prefix)
        return files + plots.resolution_optimal(an, out_dir, prefix)


QUESTION = Resolution()
