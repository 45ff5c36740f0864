"""The paper's scaling recommendations, recomputed from data (nothing here is hard-coded).

A compatibility facade: the paths and their fits live in :mod:`rsscale.analysis.study`, each
question (depth vs width, across regimes, resolution) in :mod:`rsscale.analysis.questions`, whose
modules document their methods. :func:`analyze_dataset` fits the paths and answers every
registered question.
"""

from __future__ import annotations

import pandas as pd

from rsscale.analysis.efficientnet import (
    EFFICIENTNET_EXPONENT,
    EFFICIENTNET_TABLE,
    efficientnet_table_exponent,
)
from rsscale.analysis.questions import answer_all
from rsscale.analysis.questions.dvw_estimate import compare_pair, depth_vs_width
from rsscale.analysis.questions.resolution_estimate import (
    favoured_form,
    resolution_exponent,
    resolution_recommendation,
    resolution_surface,
)
from rsscale.analysis.study import MEASURES, Analysis, PathFit, Settings, fit_paths

__all__ = [
    "EFFICIENTNET_EXPONENT",
    "EFFICIENTNET_TABLE",
    "MEASURES",
    "Analysis",
    "PathFit",
    "Settings",
    "analyze_dataset",
    "compare_pair",
    "depth_vs_width",
    "efficientnet_table_exponent",
    "favoured_form",
    "resolution_exponent",
    "resolution_recommendation",
    "resolution_surface",
]


def analyze_dataset(df: pd.DataFrame, st: Settings | None = None, dataset: str = "") -> Analysis:
    """Fits and recommendations for the usable cells of one dataset."""
    an, used = fit_paths(df, st, dataset)
    answer_all(an, used)
    return an
