"""Every figure of one dataset's analysis: the path fits, each question's figures (its
``figures`` hook, in the registry's order) and the Pareto fronts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsscale.analysis import plots
from rsscale.analysis.pareto import COSTS
from rsscale.analysis.questions import QUESTIONS
from rsscale.analysis.study import MEASURES, Analysis


def all_figures(an: Analysis, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]:
    files: list[str] = []
    d = df[df["usable"]]
    for m in MEASURES:
        if np.isfinite(d[m].to_numpy(float)).any():
            for g in plots.pick(list(an.regimes), 4):
                files += plots.scaling_curves(an, d, m, g, out_dir, prefix)
    for q in QUESTIONS:
        files += q.figures(an, d, Path(out_dir), prefix)
    for c in COSTS:
        if c in d and np.isfinite(d[c].to_numpy(float)).any():
            files += plots.pareto(an, d, c, out_dir, prefix)
    return files
