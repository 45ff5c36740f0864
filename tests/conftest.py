"""Shared fixtures.

`slurm_cluster` (session): the local single-node SLURM cluster of scripts/slurm_up.sh (one node,
partition debug, 8 CPUs, 4 declared GPUs without devices: docs/clusters.md). The script is run
once per session (a fast no-op when the cluster is up and its configuration unchanged). If the
cluster cannot be started the fixture *fails* with the script's output - CI must not silently
skip the SLURM tests. Set RSSCALE_NO_SLURM=1 to skip them instead (e.g. on a laptop without root).

Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`) every test that uses the cluster runs
in one worker, one after another: they share one node's CPUs and some wait for a job to reach a
state, which a second SLURM test's jobs would delay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_UP = REPO / "scripts" / "slurm_up.sh"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Keep the SLURM tests in one xdist group (see the module docstring)."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Make sure the local SLURM cluster is up; return {"cluster": ..., "partition": ...}."""
    if os.environ.get("RSSCALE_NO_SLURM") == "1":
        pytest.skip("RSSCALE_NO_SLURM=1: SLURM tests skipped")
    info = {"cluster": "rsscale", "partition": "debug"}
    if os.geteuid() == 0:
        cmd = ["bash", str(SLURM_UP)]
    else:  # the script needs root; a cluster someone else started is fine too
        from rsscale.launch.slurm import slurm_available

        if slurm_available():
            return info
        if not shutil.which("sudo"):
            pytest.fail("scripts/slurm_up.sh needs root (no sudo); RSSCALE_NO_SLURM=1 skips", pytrace=False)
        cmd = ["sudo", "-n", "bash", str(SLURM_UP)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/slurm_up.sh did not finish in 300 s:\n{e.stdout}\n{e.stderr}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/slurm_up.sh failed (exit {proc.returncode}); set RSSCALE_NO_SLURM=1 to skip SLURM"
            f" tests.\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return info
