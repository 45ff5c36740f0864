"""The W&B loader against objects shaped like what ``wandb.Api`` returns.

Not testable without a W&B server (and therefore not tested): the real GraphQL query and its
filters (``{"group": ...}``), the server's page sizes and real 429 responses/Retry-After
headers, authentication, and the exact keys the project's W&B logger (rsscale/train/wandb_log.py)
writes, which the loader reads through several spellings (see wandb_source's module doc).
"""

import pytest
import requests

from rsscale.analysis import synthetic as S
from rsscale.analysis.wandb_source import is_rate_limited, iter_runs, load_wandb, run_to_row

try:
    from wandb.errors import CommError
except Exception:  # pragma: no cover
    CommError = None


def _rate_limit_error():
    resp = requests.Response()
    resp.status_code = 429
    http = requests.HTTPError("429 Client Error: Too Many Requests", response=resp)
    if CommError is not None:
        return CommError("rate limited", exc=http)
    return http


class FakeSummary:
    """Like wandb.apis.public.HTTPSummary: a dict-like with _json_dict."""

    def __init__(self, d):
        self._json_dict = dict(d)

    def __getitem__(self, k):
        return self._json_dict[k]

    def keys(self):
        return self._json_dict.keys()


class FakeRun:
    def __init__(self, i, row, style, group, fail_config_once=False):
        self.id = f"run{i:04d}"
        self.name = f"cell-{i}"
        self.group = group
        self.state = "finished" if row["status"] == "completed" else "crashed"
        self.created_at = "2025-01-01T00:00:00"
        rec = S.make_record(row, status=row["status"])
        self._config = rec["config"] | {"cell_id": rec["cell_id"], "cell_hash": rec["cell_hash"]}
        if style == "record":
            summ = {"record": rec}
        elif style == "nested":
            summ = {"final": rec["final"], "cost": rec["cost"], "_step": 3}
        else:  # slash-separated keys, the way wandb.log({"final/top1": ...}) stores them
            summ = {f"final/{k}": v for k, v in rec["final"].items()} | {
                f"cost/{k}": v for k, v in rec["cost"].items()
            }
        self.summary = FakeSummary(summ)
        self._fail = fail_config_once

    @property
    def config(self):  # lazily loaded in the real client: can hit the rate limit too
        if self._fail:
            self._fail = False
            raise _rate_limit_error()
        return self._config


class FakeRuns:
    """Like wandb's Paginator: pages fetched lazily, __getitem__ loads until the index exists."""

    def __init__(self, runs, per_page, fail_pages):
        self._all = runs
        self.per_page = per_page
        self.objects = []
        self.fail_pages = dict(fail_pages)  # page number -> failures left
        self.fetches = 0

    @property
    def more(self):
        return len(self.objects) < len(self._all)

    def _load_page(self):
        if not self.more:
            return False
        page = len(self.objects) // self.per_page
        self.fetches += 1
        if self.fail_pages.get(page, 0) > 0:
            self.fail_pages[page] -= 1
            raise _rate_limit_error()
        self.objects.extend(self._all[len(self.objects) : len(self.objects) + self.per_page])
        return True

    def __getitem__(self, index):
        loaded = True
        while loaded and index > len(self.objects) - 1:
            loaded = self._load_page()
        return self.objects[index]


class FakeApi:
    def __init__(self, runs, fail_pages=None, fail_runs_call=0):
        self._runs = runs
        self.fail_pages = fail_pages or {}
        self.fail_runs_call = fail_runs_call
        self.calls = []
        self.last = None

    def runs(self, path, filters=None, order="+created_at", per_page=50, include_sweeps=False, lazy=True):
        self.calls.append((path, filters, per_page))
        if self.fail_runs_call:
            self.fail_runs_call -= 1
            raise _rate_limit_error()
        runs = [r for r in self._runs if not filters or r.group == filters.get("group")]
        self.last = FakeRuns(runs, per_page, self.fail_pages)
        return self.last


def _runs(n=230, group="g1"):
    t = S.make_table(
        depths=(26, 50, 101, 200, 300), widths=(0.25, 0.5, 1.0), resolutions=(32, 64), epochs=(1, 2, 5, 10)
    )
    t = t.iloc[:n].copy()
    t["status"] = "completed"
    if n > 7:
        t.iloc[7, t.columns.get_loc("status")] = "failed"
    styles = ["record", "nested", "slash"]
    runs = [
        FakeRun(i, row, styles[i % 3], group, fail_config_once=(i == 11))
        for i, row in enumerate(t.to_dict("records"))
    ]
    return t, runs


def test_paging_backoff_mapping_and_cache(tmp_path):
    t, runs = _runs(n=120)
    other = _runs(n=5, group="other")[1]
    api = FakeApi(runs + other, fail_pages={1: 2, 2: 1}, fail_runs_call=1)
    sleeps = []
    df, notes = load_wandb("ent/proj/g1", api=api, cache_dir=tmp_path, per_page=50, sleep=sleeps.append)
    assert len(df) == 120 and df["wandb_run_id"].is_unique
    assert list(df["wandb_run_id"]) == [r.id for r in runs]  # nothing skipped or duplicated
    assert api.calls[-1] == ("ent/proj", {"group": "g1"}, 50)
    # runs() call; lazy config of run 11 (page 0); page 1 twice (1 s, 2 s); page 2 once
    assert sleeps == [1.0, 1.0, 1.0, 2.0, 1.0]
    assert any("rate limited" in n for n in notes)
    # every style of summary maps to the same values
    assert df["usable"].sum() == 119 and df.loc[7, "status"] == "failed"
    assert (df["top1"].to_numpy()[df["usable"]] == t["top1"].to_numpy()[df["usable"]]).all()
    assert (df["flops"].to_numpy() == t["flops"].to_numpy().astype(int)).all()
    assert (df["depth"].to_numpy() == t["depth"].to_numpy()).all()
    assert (df["source"] == "wandb:ent/proj/g1").all()
    assert df["cell_hash"].notna().all()
    # cached: a second load does not touch the API
    df2, notes2 = load_wandb("ent/proj/g1", api=FakeApi([]), cache_dir=tmp_path)
    assert len(df2) == 120 and any("cache" in n for n in notes2)
    df3, _ = load_wandb("ent/proj/g1", api=FakeApi(runs[:3]), cache_dir=tmp_path, refresh=True)
    assert len(df3) == 3


def test_other_errors_are_not_retried(tmp_path):
    class Boom(FakeApi):
        def runs(self, *a, **k):
            raise requests.HTTPError("500 Server Error")

    with pytest.raises(requests.HTTPError):
        load_wandb("e/p", api=Boom([]), cache_dir=tmp_path, sleep=lambda s: None)


def test_gives_up_after_retries(tmp_path):
    _, runs = _runs(n=10)
    api = FakeApi(runs, fail_pages={0: 100})
    with pytest.raises(Exception) as ei:
        load_wandb("e/p", api=api, cache_dir=tmp_path, retries=3, sleep=lambda s: None)
    assert is_rate_limited(ei.value)
    assert api.last.fetches == 4


def test_iter_runs_and_state_mapping():
    _, runs = _runs(n=7)
    pages = FakeRuns(runs, 3, {})
    assert [r.id for r in iter_runs(pages)] == [r.id for r in runs]
    r = runs[1]  # nested style
    r.state = "running"
    r.summary = FakeSummary({})
    row = run_to_row(r, "wandb:e/p")
    assert row["status"] == "running" and row["depth"] == 26


def test_bad_path_and_in_table_loader(tmp_path):
    from rsscale.analysis.load import LoadError, load_results

    with pytest.raises(LoadError, match="ENTITY/PROJECT"):
        load_wandb("justone", api=FakeApi([]), cache_dir=tmp_path)
    _, runs = _runs(n=6)
    load_wandb("e/p/g1", api=FakeApi(runs), cache_dir=tmp_path)
    df = load_results(["wandb:e/p/g1"], cache_dir=tmp_path)  # from the cache
    assert len(df) == 6
