import json

import numpy as np
import pandas as pd
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analysis.load import COLUMNS, SCHEMA, LoadError, load_results, normalize, record_to_row
from rsscale.layout import CellLayout, SweepLayout


def test_sweep_dir_one_row_per_cell_with_schema(sweep_dir):
    df = load_results(sweep_dir)
    manifest = json.loads(SweepLayout(sweep_dir).manifest.read_text())
    assert len(df) == len(manifest["cells"])
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    for c, (t, _) in SCHEMA.items():
        if t == "Int64":
            assert str(df[c].dtype) == "Int64", c
        elif t == "float64":
            assert df[c].dtype == np.float64, c
    counts = df["status"].value_counts().to_dict()
    assert counts == {"completed": 95, "pending": 2, "failed": 1, "diverged": 1, "malformed": 1}
    assert df["usable"].sum() == 95
    # failed / diverged / pending / malformed stay in the table, with a visible note
    bad = df[~df["usable"]]
    assert bad["note"].notna().all()
    assert any("malformed" in n for n in df.attrs["notes"])
    assert any("left out of the fits" in n for n in df.attrs["notes"])
    # malformed and pending rows still carry their axes from the manifest
    assert bad[["depth", "width", "resolution", "epochs"]].notna().all().all()
    # values round-trip from the record
    good = df[df["usable"]].iloc[0]
    rec = json.loads(SweepLayout(sweep_dir).cell(good["cell_id"]).record.read_text())
    assert good["top1"] == rec["final"]["top1"]
    assert good["flops"] == rec["cost"]["flops_per_image"]
    assert good["train_step_s"] == rec["cost"]["train_step_s"]
    assert good["resolution"] == rec["config"]["data"]["train_res"]
    assert good["dataset"] == "fashion_mnist"
    assert good["error"] == pytest.approx(1 - rec["final"]["top1"])


def test_failed_record_row():
    row = S.make_table(depths=(50,), widths=(1.0,), resolutions=(32,), epochs=(2,)).iloc[0].to_dict()
    rec = S.make_record(row, status="failed")
    df = normalize(pd.DataFrame([record_to_row(rec, "x")]))
    assert df.loc[0, "status"] == "failed" and df.loc[0, "error_class"] == "oom"
    assert not df.loc[0, "usable"] and "status failed" in df.loc[0, "note"]


def test_record_statuses_come_from_the_one_vocabulary():
    """A tuning trial's `pruned` record is a record status (rsscale.states), not a malformed record."""
    row = S.make_table(depths=(50,), widths=(1.0,), resolutions=(32,), epochs=(2,)).iloc[0].to_dict()
    df = normalize(pd.DataFrame([record_to_row(S.make_record(row, status="pruned"), "x")]))
    assert df.loc[0, "status"] == "pruned" and not df.loc[0, "usable"]
    assert df.loc[0, "note"] == "status pruned"
    bad = normalize(pd.DataFrame([record_to_row({**S.make_record(row), "status": "exploded"}, "x")]))
    assert bad.loc[0, "status"] == "malformed" and "unknown status 'exploded'" in bad.loc[0, "note"]


def test_unreadable_manifest_falls_back_to_the_cell_records(sweep_dir):
    n_records = sum(1 for d in SweepLayout(sweep_dir).cell_dirs() if CellLayout(d).record.exists())
    SweepLayout(sweep_dir).manifest.write_text('{"grid": "synthetic", "cells": {')  # torn write
    df = load_results(sweep_dir)
    assert len(df) == n_records  # the manifest-only (pending) cells are gone with it
    assert any("unreadable manifest" in n and "reading cells/ only" in n for n in df.attrs["notes"])
    assert (df["status"] == "completed").sum() == 95


def test_empty_and_missing_sweep_dirs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError, match="not a sweep directory"):
        load_results(tmp_path / "empty")
    SweepLayout(tmp_path / "empty2").cells.mkdir(parents=True)
    with pytest.raises(LoadError, match="empty sweep directory"):
        load_results(tmp_path / "empty2")
    (tmp_path / "empty3").mkdir()
    SweepLayout(tmp_path / "empty3").manifest.write_text('{"grid": "g", "cells": {}}')
    with pytest.raises(LoadError, match="empty sweep directory"):
        load_results(tmp_path / "empty3")
    with pytest.raises(LoadError, match="no such"):
        load_results(tmp_path / "nope")


def test_table_sources(tmp_path, paper_table):
    t = paper_table()[["depth", "width", "resolution", "epochs", "flops", "top1"]]
    t.to_csv(tmp_path / "t.csv", index=False)
    t.to_parquet(tmp_path / "t.parquet")
    a = load_results(tmp_path / "t.csv")
    b = load_results(tmp_path / "t.parquet")
    assert len(a) == len(b) == len(t) and a["usable"].all()
    assert (a["dataset"] == "unknown").all() and (a["status"] == "completed").all()
    assert np.isnan(a["train_step_s"]).all()
    t.drop(columns=["flops", "top1"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(LoadError, match="missing required column"):
        load_results(tmp_path / "bad.csv")
    p = t.copy()
    p.loc[0, "top1"] = 91.0
    p.to_csv(tmp_path / "pct.csv", index=False)
    d = load_results(tmp_path / "pct.csv")
    assert not d.loc[0, "usable"] and "percentage" in d.loc[0, "note"]
    assert d["usable"].sum() == len(t) - 1


def test_mixed_sources_and_duplicates(sweep_dir, tmp_path, paper_table):
    other = paper_table(dataset="imagenet")
    other.to_csv(tmp_path / "other.csv", index=False)
    df = load_results([sweep_dir, tmp_path / "other.csv", sweep_dir])
    assert set(df["dataset"].dropna()) == {"fashion_mnist", "imagenet"}
    assert any("duplicate" in n for n in df.attrs["notes"])
    assert (df["cell_hash"].dropna().value_counts() == 1).all()
