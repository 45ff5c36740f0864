"""Question: at equal compute, does scaling depth or width give the lower error, per training
regime? (The estimate: :mod:`rsscale.analysis.questions.dvw_estimate`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsscale.analysis import plots
from rsscale.analysis.mdfmt import ci, fmt
from rsscale.analysis.power import describe
from rsscale.analysis.questions.base import Answer, ResolveOption, nearest_option
from rsscale.analysis.questions.dvw_estimate import depth_vs_width
from rsscale.analysis.regimes import label as regime_label
from rsscale.analysis.study import MEASURES, Analysis

DECIDED = ("depth", "width", "equivalent")


def verdict_meaning(v: dict[str, Any], st: Any) -> str:
    """What a depth-vs-width verdict says, in one sentence, with the study's power."""
    w = v.get("winner")
    p = v.get("power") or {}
    if w in ("depth", "width"):
        text = (
            f"scaling {w} gives lower error at equal FLOPs, by more than {st.min_effect} in log error "
            f"with confidence {fmt(v.get('confidence'), 2)}"
        )
    elif w == "equivalent":
        text = (
            f"depth and width give the same error at equal FLOPs within +-{st.equivalence_margin} in "
            f"log error (about {st.equivalence_margin:.0%} relative), "
            f"confidence {fmt(v.get('confidence'), 2)}"
        )
    else:
        text = "not enough data to tell a winner from no difference: " + (v.get("reason") or "")
    more = describe(p)
    return text + (f". Power: {more}." if more else ".")


def markdown(an: Analysis) -> list[str]:
    """The report's depth-vs-width section: per regime, then per resolution."""
    st, dvw, regs = an.settings, an.depth_vs_width, an.regimes
    L = ["### Depth vs width (at equal FLOPs; and at equal measured train-step time)\n"]
    L.append(
        "| regime (epochs) | winner (FLOPs) | confidence | mean log-error diff depth-width [CI] "
        "| compute range (FLOPs) | winner (time) | confidence (time) | why inconclusive |"
    )
    L.append("|---|---|---|---|---|---|---|---|")
    for e, v in dvw.items():
        t = v.get("time", {})
        L.append(
            f"| {e} | **{v.get('winner')}** | {fmt(v.get('confidence'), 2)} | "
            f"{fmt(v.get('mean_log_error_diff'))} {ci(v.get('mean_log_error_diff_ci'))} | "
            f"{ci(v.get('compute_range'))} | {t.get('winner', '-')} | {fmt(t.get('confidence'), 2)} | "
            f"{v.get('reason', '') or ''} |"
        )
    L.append("")
    for e, v in dvw.items():
        name = regime_label(regs[e]) if e in regs else f"{e} epochs"
        L.append(f"- {name}: **{v.get('winner')}**: {verdict_meaning(v, st)}")
    L.append(
        "\nPer resolution (FLOPs): where each strategy wins along the compute axis (pointwise bootstrap).\n"
    )
    L.append(
        "| regime (epochs) | resolution | winner | confidence | depth wins over | width wins over "
        "| paths (law, n) | why inconclusive |"
    )
    L.append("|---|---|---|---|---|---|---|---|")
    for e, v in dvw.items():
        for res, x in v.get("by_resolution", {}).items():
            L.append(
                f"| {e} | {res} | {x.get('winner')} | {fmt(x.get('confidence'), 2)} | "
                f"{'; '.join(ci(i) for i in x.get('depth_wins_over', [])) or '-'} | "
                f"{'; '.join(ci(i) for i in x.get('width_wins_over', [])) or '-'} | "
                f"depth {x.get('law_depth', '-')} n={x.get('n_depth', '-')}, "
                f"width {x.get('law_width', '-')} n={x.get('n_width', '-')} | {x.get('reason') or ''} |"
            )
    return L


def summary(an: Analysis) -> list[str]:
    """``analyze``'s lines: the winner per regime and its minimal detectable difference."""
    out = []
    for e, v in an.depth_vs_width.items():
        conf = v.get("confidence")
        mdd = (v.get("power") or {}).get("minimal_detectable_difference")
        out.append(
            f"depth vs width, {regime_label(an.regimes[e]) if e in an.regimes else f'{e} epochs'}: "
            f"{v.get('winner')}"
            + (f" (confidence {conf:.2f})" if conf is not None else "")
            + (f"; minimal detectable difference {mdd:.3f} log error" if mdd is not None else "")
        )
    return out


def undecided_option(
    question: str, entries: dict[str, dict[str, Any]], keys: list[str]
) -> ResolveOption | None:
    """The data that would decide every regime in `keys` (the dearest of their options), with the
    depth and width paths of those regimes."""
    opts = [nearest_option(question, entries[k].get("power"), (k,)) for k in keys]
    opts = [o for o in opts if o is not None]
    if not opts:
        return None
    worst = max(opts, key=lambda o: o.data_factor)
    scope = tuple(keys)
    paths = tuple(f"{s}@{k}" for k in keys for s in ("depth", "width"))
    return ResolveOption(
        question=question,
        verdict=worst.verdict if len(opts) == 1 else "decided in every regime",
        data_factor=worst.data_factor,
        more_seeds_per_cell=worst.more_seeds_per_cell,
        cells_per_path=worst.cells_per_path,
        cells_per_path_now=worst.cells_per_path_now,
        scope=scope,
        paths=paths,
    )


class DepthVsWidth:
    """Depth vs width per training regime (FLOPs; train-step time alongside)."""

    name = "depth_vs_width"

    def answer(self, an: Analysis, df: pd.DataFrame) -> Answer:
        an.depth_vs_width = depth_vs_width(an, df)
        winners = {k: v.get("winner") for k, v in an.depth_vs_width.items()}
        confs = [v.get("confidence") for v in an.depth_vs_width.values()]
        if len(set(winners.values())) == 1:
            verdict = next(iter(winners.values()))
        else:
            verdict = "; ".join(f"{w} at {k}" for k, w in winners.items()) or "inconclusive"
        conf = None if not confs or any(c is None for c in confs) else float(min(confs))
        return Answer(self.name, verdict, conf, an.depth_vs_width, summary(an), markdown(an))

    def resolve(self, answer: Answer) -> ResolveOption | None:
        entries = answer.numbers
        undecided = [k for k, v in entries.items() if v.get("winner") not in DECIDED]
        return undecided_option(self.name, entries, undecided)

    def figures(self, an: Analysis, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]:
        files: list[str] = []
        for m in MEASURES:
            if np.isfinite(df[m].to_numpy(float)).any():
                files += plots.depth_vs_width(an, m, out_dir, prefix)
        return files


QUESTION = DepthVsWidth()
