"""The study names its objective (Optuna's dashboard, the report's axes) and the tuning report prints
nothing from matplotlib, even where matplotlib's default cache directory cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib
import optuna
import pytest

from rsscale.tune.__main__ import create
from rsscale.tune.results import write_report
from rsscale.tune.study import OBJECTIVE_NAME
from tests.tune.tune_helpers import REPO, load

TUNE = {"storage": None, "journal_lock": "flock", "sampler": "random", "seed": 0, "n_startup_trials": 1,
        "pruner": "median", "n_warmup_epochs": 1}  # fmt: skip


def _fill(study: optuna.Study, n: int = 3) -> None:
    for i in range(n):
        t = study.ask({"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)})
        for epoch in (1, 2):
            t.report(0.1 * epoch + 0.01 * i, epoch)
        study.tell(t, 0.2 + 0.1 * i)


def test_study_names_its_objective_for_every_reader(tmp_path):
    d = tmp_path / "study"
    d.mkdir()
    create({"study_name": "study", "tune": TUNE, "search": {"name": "lr"}}, d)
    assert load(d).metric_names == [OBJECTIVE_NAME]  # what optuna-dashboard shows instead of "Objective 0"
    create({"study_name": "study", "tune": TUNE, "search": {"name": "lr"}}, d)  # resumed: unchanged
    assert load(d).metric_names == [OBJECTIVE_NAME]


def test_report_axes_name_the_objective(tmp_path, monkeypatch):
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text stays text in the SVG
    d = tmp_path / "study"
    d.mkdir()
    study = create({"study_name": "study", "tune": TUNE, "search": {"name": "lr"}}, d)
    _fill(study)
    write_report(study, tmp_path / "report")
    history = (tmp_path / "report" / "history.svg").read_text()
    assert OBJECTIVE_NAME in history and "Objective Value" not in history
    pruning = (tmp_path / "report" / "pruning.svg").read_text()
    assert f"{OBJECTIVE_NAME} after each epoch" in pruning


SNIPPET = """
import optuna
from pathlib import Path
from rsscale.tune.results import write_report
optuna.logging.set_verbosity(optuna.logging.WARNING)
s = optuna.create_study(direction="maximize")
for i in range(3):
    t = s.ask({{"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)}})
    t.report(0.1, 1)
    s.tell(t, 0.2 + 0.1 * i)
write_report(s, Path({out!r}))
print("report written")
"""


@pytest.mark.timeout(120)
def test_report_prints_no_matplotlib_lines_with_an_unwritable_home(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a directory: ~/.cache and ~/.config cannot be made")
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "XDG_"))}
    env |= {"HOME": str(home), "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": str(REPO)}
    for _ in range(2):  # the second run finds the font cache the first one built
        proc = subprocess.run(
            [sys.executable, "-c", SNIPPET.format(out=str(tmp_path / "report"))],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=110,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout + proc.stderr
        assert "report written" in out and "matplotlib" not in out.lower(), out
    assert list((tmp_path / "tmp").glob("rsscale-matplotlib-*/fontlist-*.json"))
