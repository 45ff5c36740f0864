"""`python -m rsscale.analyze`'s defaults are read from `Settings`, the analysis settings they set."""

from __future__ import annotations

import dataclasses

import rsscale.analyze as analyze
from rsscale.analysis.study import Settings

SHARED = {
    "n_boot",
    "seed",
    "ci_level",
    "threshold",
    "min_effect",
    "equivalence_margin",
    "resolution_margin",
    "law",
    "num_classes",
    "base_depth",
    "base_width",
}


def test_every_option_that_sets_a_setting_defaults_to_it():
    args = vars(analyze.build_parser().parse_args(["x"]))
    assert {f.name for f in dataclasses.fields(Settings)} & set(args) == SHARED
    assert {k: args[k] for k in SHARED} == {k: getattr(Settings(), k) for k in SHARED}


def test_a_changed_setting_default_changes_the_command_line_default(monkeypatch):
    other = Settings(
        n_boot=7, seed=3, ci_level=0.8, threshold=0.7, min_effect=0.02, equivalence_margin=0.1,
        resolution_margin=0.2, law="powerlaw", num_classes=5, base_depth=26.0, base_width=0.5,
    )  # fmt: skip
    monkeypatch.setattr(analyze, "Settings", lambda: other)
    args = vars(analyze.build_parser().parse_args(["x"]))
    assert {k: args[k] for k in SHARED} == {k: getattr(other, k) for k in SHARED}
