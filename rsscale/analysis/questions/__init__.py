"""The questions the analysis answers, one module each, in the order the report shows them.

Each module defines one object with the :class:`~rsscale.analysis.questions.base.Question`
interface (``name``, ``answer``, ``resolve``, ``figures``). The report, the figures, ``analyze``'s
summary and the notebooks iterate over :data:`QUESTIONS`; adding a question is one module here,
registered below (or with :func:`register`), and its test. A question may read the answers of
those before it (``an.answers``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rsscale.analysis.questions import cross_regime, depth_width, resolution
from rsscale.analysis.questions.base import Answer, Question, ResolveOption
from rsscale.analysis.study import Analysis

QUESTIONS: list[Question] = [depth_width.QUESTION, cross_regime.QUESTION, resolution.QUESTION]

__all__ = ["QUESTIONS", "Answer", "Question", "ResolveOption", "answer_all", "register", "unregister"]


def register(question: Question) -> Question:
    """Add a question at the end of the registry (its name must be new)."""
    if not isinstance(question, Question):
        raise TypeError(f"{question!r} lacks the Question interface (name, answer, resolve, figures)")
    if any(q.name == question.name for q in QUESTIONS):
        raise ValueError(f"a question named {question.name!r} is already registered")
    QUESTIONS.append(question)
    return question


def unregister(name: str) -> None:
    """Remove the question called `name` (for tests and plug-ins)."""
    QUESTIONS[:] = [q for q in QUESTIONS if q.name != name]


def answer_all(an: Analysis, df: pd.DataFrame) -> dict[str, Any]:
    """Answer every registered question in order into ``an.answers`` and ``an.questions`` (the
    compact JSON form with what would resolve each)."""
    for q in QUESTIONS:
        a = q.answer(an, df)
        if not isinstance(a, Answer):
            raise TypeError(f"question {q.name!r}: answer() returned {type(a).__name__}, not Answer")
        an.answers[q.name] = a
        an.questions[q.name] = a.as_dict(q.resolve(a))
    return an.questions
