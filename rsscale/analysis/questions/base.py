"""The interface every question of the analysis answers (depth vs width, resolution, ...).

A question is one module holding one object with this interface; the report, the figures,
``analyze``'s summary and the notebooks iterate over :data:`rsscale.analysis.questions.QUESTIONS`
instead of knowing each question by hand, so adding a question touches one module and its test.

``resolve`` says what data would settle an answer that is not settled (or would firm one up):
the self-sizing study plans its next wave from these :class:`ResolveOption` objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd


@dataclass(frozen=True)
class ResolveOption:
    """The data that would resolve a question if its point estimate holds (rsscale.analysis.power).

    ``data_factor``: how many times the present data (standard error ~ 1/sqrt(replicates));
    ``more_seeds_per_cell``: extra seeds of every cell concerned that give that factor;
    ``cells_per_path``: or this many cells along each path concerned (None: not a path question);
    ``cells`` / ``paths``: what is concerned (regime keys, epoch budgets, path names)."""

    question: str
    verdict: str  # the verdict it would reach
    data_factor: float
    more_seeds_per_cell: int
    cells_per_path: int | None = None
    cells_per_path_now: int | None = None
    scope: tuple[str, ...] = ()  # regimes or epoch budgets concerned
    paths: tuple[str, ...] = ()  # scaling paths concerned, e.g. "depth@4/224"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.data_factor) and self.data_factor >= 1.0):
            raise ValueError(f"ResolveOption.data_factor must be finite and >= 1, got {self.data_factor}")
        if self.more_seeds_per_cell < 0:
            raise ValueError(
                f"ResolveOption.more_seeds_per_cell must be >= 0, got {self.more_seeds_per_cell}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "verdict": self.verdict,
            "data_factor": self.data_factor,
            "more_seeds_per_cell": self.more_seeds_per_cell,
            "cells_per_path": self.cells_per_path,
            "cells_per_path_now": self.cells_per_path_now,
            "scope": list(self.scope),
            "paths": list(self.paths),
        }


@dataclass
class Answer:
    """One question's answer for one dataset.

    ``numbers``: the question's full machine-readable entry (also in recommendations.json);
    ``summary``: the lines ``analyze`` prints; ``markdown``: its report section."""

    question: str
    verdict: str
    confidence: float | None
    numbers: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)

    def as_dict(self, resolve: ResolveOption | None) -> dict[str, Any]:
        """Compact form for recommendations.json's ``questions`` section."""
        return {
            "verdict": self.verdict,
            "confidence": self.confidence,
            "summary": list(self.summary),
            "resolve": resolve.as_dict() if resolve is not None else None,
        }


@runtime_checkable
class Question(Protocol):
    """One question of the analysis. ``answer`` may read earlier questions' answers in
    ``an.answers`` (the registry's order)."""

    name: str  # key in recommendations.json's ``questions``

    def answer(self, an: Any, df: pd.DataFrame) -> Answer: ...

    def resolve(self, answer: Answer) -> ResolveOption | None: ...

    def figures(self, an: Any, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]: ...


def nearest_option(
    question: str, power: dict[str, Any] | None, scope: tuple[str, ...] = (), paths: tuple[str, ...] = ()
) -> ResolveOption | None:
    """The cheapest verdict within reach in a power summary (rsscale.analysis.power), as an option."""
    todo = (power or {}).get("to_resolve") or {}
    if not todo:
        return None
    verdict = min(todo, key=lambda v: todo[v]["data_factor"])
    r = todo[verdict]
    return ResolveOption(
        question=question,
        verdict=verdict,
        data_factor=float(r["data_factor"]),
        more_seeds_per_cell=int(r["more_seeds_per_cell"]),
        cells_per_path=r.get("cells_per_path"),
        cells_per_path_now=r.get("cells_per_path_now"),
        scope=scope,
        paths=paths,
    )
