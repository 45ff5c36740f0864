"""The backend seam, proven by a backend that lives only in tests/ (tests/launch/inprocess_backend.py):
registered from here, picked by `cluster.launcher`, it runs a small sweep end to end through the
public driver (rsscale.driver.run_sweep), and status reads its cells like any other's."""

from __future__ import annotations

import logging

import pytest

from rsscale.config import compose
from rsscale.driver import run_sweep
from rsscale.launch.backends import BackendError, backend_for, backend_name, registered
from rsscale.launch.cell_states import cell_rows
from rsscale.launch.manifest import Manifest
from tests.launch.inprocess_backend import NAME, InProcessBackend
from tests.launch.sweep_helpers import FAST, TEST_GRIDS, records


@pytest.fixture
def quiet_process(monkeypatch):
    """The cells run in this process: whatever they set in its environment and logging is undone."""
    for var in ("TORCHINDUCTOR_CACHE_DIR", "RSSCALE_STOP_SIGNALS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    root = logging.getLogger()
    before = list(root.handlers)
    InProcessBackend.launched = []
    yield
    for h in [h for h in root.handlers if h not in before]:
        root.removeHandler(h)
        h.close()


@pytest.mark.slow
def test_a_backend_registered_from_tests_runs_a_sweep_end_to_end(tmp_path, quiet_process, capsys):
    task = [
        "+grid=tiny",
        f"hydra.searchpath=[file://{TEST_GRIDS}]",
        *FAST,
        f"cluster.launcher={NAME}",
        "sweep.progress=quiet",
    ]
    cfg = compose(task)
    assert backend_name(cfg.cluster) == NAME and NAME in registered()
    sweep_dir = tmp_path / "sweep"

    assert run_sweep(cfg, sweep_dir, task) == 0
    recs = records(sweep_dir)
    assert len(recs) == 2 and {r["status"] for r in recs.values()} == {"completed"}
    assert sorted(InProcessBackend.launched) == sorted(recs)
    m = Manifest.load(sweep_dir)
    subs = [s for c in m.cells.values() for s in c["submissions"]]
    assert {s["launcher"] for s in subs} == {NAME} and len(subs) == 2
    assert {r["status"] for r in cell_rows(m)} == {"completed"}
    out = capsys.readouterr().out
    assert "2 cells: 2 completed" in out and "[2/2]" in out

    # the same command again: every cell is done, nothing is launched
    assert run_sweep(cfg, sweep_dir, task) == 0
    assert len(InProcessBackend.launched) == 2
    assert "skipped: 2 completed" in capsys.readouterr().out


def test_an_unknown_launcher_is_refused_before_anything_runs():
    with pytest.raises(BackendError, match="cluster.launcher='nowhere': no such backend"):
        backend_for({"name": "local", "launcher": "nowhere"})


def test_a_profile_picks_its_backend_by_launcher_then_by_name_else_slurm():
    assert backend_name({"name": "mysite"}) == "slurm"  # an old site profile without `launcher`
    assert backend_name({"name": "local"}) == "local"
    assert backend_name({"name": "mysite", "kind": "local"}) == "local"  # the older spelling
    assert backend_name({"name": "local", "launcher": "slurm"}) == "slurm"


def test_cells_learn_their_stop_signals_from_the_environment_their_backend_sets(monkeypatch):
    import signal

    from rsscale.launch.backends import LocalBackend, SlurmBackend
    from rsscale.train.stop_signals import STOP_SIGNALS_ENV, cell_stop_signals

    for backend, want in ((LocalBackend({"name": "local"}), (signal.SIGTERM,)), (SlurmBackend({}), ())):
        env = backend.cell_env()
        monkeypatch.setenv(STOP_SIGNALS_ENV, env[STOP_SIGNALS_ENV])
        assert cell_stop_signals() == want, backend.name
    monkeypatch.delenv(STOP_SIGNALS_ENV)
    assert cell_stop_signals() == ()
    monkeypatch.setenv(STOP_SIGNALS_ENV, "SIGTERM,BOGUS")
    with pytest.raises(ValueError, match="BOGUS is not a signal name"):
        cell_stop_signals()
