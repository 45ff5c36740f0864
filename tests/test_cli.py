"""Console scripts: installed from pyproject's [project.scripts], Hydra's completion through them,
argcomplete for the argparse commands, and --help that lists the user's groups only.

The package is installed into a temporary --target (the shared venv is not touched); the scripts
import rsscale from this checkout first (PYTHONPATH), as the editable install does, so conf/ is found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("rsscale-sweep", "rsscale-tune", "rsscale-status", "rsscale-analyze", "rsscale-bench",
           "rsscale-bench-data")  # fmt: skip
INTERNAL = ("schema", "grid/search", "hydra/", "== Config ==")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("rsscale", "hydra_plugins"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
         "--target", str(tmp / "inst"), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return tmp / "inst"


def env(installed: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{installed}", **extra}


def run(installed: Path, script: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(installed / "bin" / script), *args], env=env(installed, **extra), capture_output=True, text=True,
        timeout=120, cwd=installed,
    )  # fmt: skip


# The Hydra apps import torch (seconds each): their queries run side by side, once per module.
QUERIES = {
    "groups": ("rsscale-sweep", ["-sc", "query=bash"], {"COMP_LINE": "rsscale-sweep "}),
    "grids": ("rsscale-sweep", ["-sc", "query=bash"], {"COMP_LINE": "rsscale-sweep +grid="}),
    "spaces": ("rsscale-tune", ["-sc", "query=bash"], {"COMP_LINE": "rsscale-tune +search="}),
    "rsscale-sweep --help": ("rsscale-sweep", ["--help"], {}),
    "rsscale-tune --help": ("rsscale-tune", ["--help"], {}),
}


@pytest.fixture(scope="module")
def hydra_answers(installed) -> dict[str, str]:
    procs = {
        key: subprocess.Popen(
            [str(installed / "bin" / script), *args],
            env=env(installed, **extra),
            cwd=installed,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for key, (script, args, extra) in QUERIES.items()
    }
    answers = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{key}: {err}"
        answers[key] = out
    return answers


def test_console_scripts_are_installed(installed):
    for name in SCRIPTS:
        assert os.access(installed / "bin" / name, os.X_OK), name
    p = run(installed, "rsscale-status", "--help")
    assert p.returncode == 0 and "--watch" in p.stdout


def test_hydra_completion_through_the_scripts(hydra_answers):
    groups = set(hydra_answers["groups"].split())
    assert {"model=", "data=", "recipe=", "cluster=", "runtime="} <= groups, groups
    grids = set(hydra_answers["grids"].split())
    assert {"+grid=depth_width", "+grid=paper", "+grid=epochs"} <= grids, grids
    spaces = set(hydra_answers["spaces"].split())
    assert {"+search=lr", "+search=recipe"} <= spaces, spaces


def test_argcomplete_through_the_status_script(installed, tmp_path):
    out = tmp_path / "completions"
    p = run(
        installed, "rsscale-status", _ARGCOMPLETE="1", _ARGCOMPLETE_IFS=" ", COMP_LINE="rsscale-status d --w",
        COMP_POINT="20", _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert out.read_text().split() == ["--watch"]


@pytest.mark.parametrize(("script", "extra"), [("rsscale-sweep", "+grid: "), ("rsscale-tune", "+search: lr")])
def test_help_lists_the_user_groups_only(hydra_answers, script, extra):
    text = hydra_answers[f"{script} --help"]
    assert text.startswith(f"{script} (python -m rsscale.")
    for group in ("model: resnet_rs, small", "data: fashion_mnist, imagenet, synthetic", "cluster: local"):
        assert f"  {group}" in text, text
    assert extra in text and "Examples:" in text and f"  {script} +" in text
    for word in INTERNAL:
        assert word not in text, word
