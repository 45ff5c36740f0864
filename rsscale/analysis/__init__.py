"""Analysis of scaling sweeps: load results, fit scaling curves, recompute the recommendations,
Pareto frontiers, figures and reports. Entry point: ``python -m rsscale.analyze``.

The report (``rsscale.analysis.report.write_report``) and the figures (``rsscale.analysis.plots``)
import matplotlib, so they are not imported here."""

from rsscale.analysis.load import COLUMNS, SCHEMA, LoadError, load_results, normalize
from rsscale.analysis.recommend import Settings, analyze_dataset

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "LoadError",
    "Settings",
    "analyze_dataset",
    "load_results",
    "normalize",
]
