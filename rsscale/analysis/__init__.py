"""Analysis of scaling sweeps: load results, fit scaling curves, recompute the recommendations,
Pareto frontiers, figures and reports. Entry point: ``python -m rsscale.analyze``.

``write_report`` and ``NoUsableCells`` are imported lazily (they pull in matplotlib)."""

from typing import Any

from rsscale.analysis.load import COLUMNS, SCHEMA, LoadError, load_results, normalize
from rsscale.analysis.recommend import Settings, analyze_dataset

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "LoadError",
    "NoUsableCells",
    "Settings",
    "analyze_dataset",
    "load_results",
    "normalize",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in ("write_report", "NoUsableCells"):
        from rsscale.analysis import report

        return getattr(report, name)
    raise AttributeError(name)
