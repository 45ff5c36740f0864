"""A sweep directory and its W&B project loaded together count each cell once.

The W&B runs are made from what the recorder really sends to W&B (its run config and summary,
caught by a stand-in for the W&B run), then read back through the W&B loader.
"""

from __future__ import annotations

import pytest

import rsscale.train.recorder as recorder_mod
from rsscale.analysis.load import load_results
from rsscale.layout import SweepLayout
from rsscale.train.record_file import load_record
from rsscale.train.recorder import RunRecorder
from tests.analysis import synthetic_laws as S
from tests.analysis.test_analysis_wandb import FakeApi, FakeSummary


class CaughtRun:
    """What the recorder opened in W&B, shaped like a `wandb.Api` run once it has finished."""

    caught: list[CaughtRun] = []

    def __init__(self, logger_cfg, *, run_id, name, config, run_dir, group=None, enabled=True):
        self.id, self.name, self.group, self.error = run_id, name, group, None
        self.config, self._summary, self.state = dict(config), {}, "running"
        self.created_at = "2025-01-01T00:00:00"
        CaughtRun.caught.append(self)

    def log(self, metrics, step=None):
        pass

    def summary(self, metrics):
        self._summary.update(metrics)

    def finish(self, exit_code=0):
        self.state = "finished" if exit_code == 0 else "failed"
        self.summary = FakeSummary(self._summary)  # as the API hands it back


@pytest.fixture
def sweep_and_wandb(tmp_path, monkeypatch):
    t = S.make_table(depths=(26, 50), widths=(0.25, 0.5), resolutions=(32,), epochs=(1,))
    sweep = S.write_sweep(tmp_path / "sweep", t)
    CaughtRun.caught = []
    monkeypatch.setattr(recorder_mod, "WandbRun", CaughtRun)
    for cell_dir in SweepLayout(sweep).cell_dirs():
        rec = load_record(cell_dir)
        r = RunRecorder.load(
            tmp_path / "runs" / cell_dir.name, rec["config"], rec["cell_id"], rec["cell_hash"]
        )
        r.start(provenance_extra={}, cost=rec["cost"], logger_cfg={"mode": "online"}, config=rec["config"])
        r.finish("completed", final=rec["final"], cost=rec["cost"])
    return sweep, FakeApi(CaughtRun.caught)


def test_sweep_dir_and_its_wandb_project_count_each_cell_once(sweep_and_wandb, tmp_path):
    sweep, api = sweep_and_wandb
    alone = load_results(sweep)
    both = load_results([sweep, "wandb:ent/proj"], api=api, cache_dir=tmp_path / "cache", refresh=True)
    assert len(alone) == 4 and len(api._runs) == 4
    assert len(both) == 4, both[["source", "cell_id", "cell_hash"]]
    assert set(both["cell_hash"]) == set(alone["cell_hash"])
    assert any("4 duplicate cell(s)" in n for n in both.attrs["notes"])
    wb_only = load_results("wandb:ent/proj", api=api, cache_dir=tmp_path / "cache", refresh=True)
    assert sorted(wb_only["cell_hash"]) == sorted(alone["cell_hash"])  # W&B rows carry the hash
