import json

import pandas as pd
import pytest

from rsscale.analysis import synthetic as S
from rsscale.analyze import main
from rsscale.layout import CellLayout, SweepLayout


def test_report_from_sweep_dir(sweep_dir, capsys):
    rc = main([str(sweep_dir), "--n-boot", "200"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "malformed record" in out.err and "left out of the fits" in out.err
    rep = SweepLayout(sweep_dir).report
    rec = json.loads((rep / "recommendations.json").read_text())
    for e in ("10", "350"):
        v = rec["depth_vs_width"][e]
        assert v["winner"] in ("depth", "width", "inconclusive")
        assert 0 <= v["confidence"] <= 1
        assert v["time"]["winner"] in ("depth", "width", "inconclusive")
    assert rec["depth_vs_width"]["10"]["winner"] == "width"
    assert rec["depth_vs_width"]["350"]["winner"] == "depth"
    r = rec["resolution"]
    assert {"exponent", "ci", "efficientnet_exponent", "verdict", "confidence"} <= set(r)
    assert r["verdict"] in ("slower", "not_slower", "inconclusive")
    assert rec["n_cells"] == 100 and rec["n_usable"] == 95
    md = (rep / "recommendations.md").read_text()
    assert "Depth vs width" in md and "## Method" in md and "malformed" in md
    fits = pd.read_csv(rep / "fits.csv")
    assert {"c", "c_lo", "c_hi", "e_inf", "converged", "optimizer_message"} <= set(fits.columns)
    summ = pd.read_csv(rep / "summary.csv")
    assert len(summ) == 100 and {
        "pareto_flops",
        "pareto_train_step_s",
        "pareto_infer_s",
        "pareto_params",
    } <= set(summ.columns)
    assert summ["pareto_flops"].any()
    assert (rep / "estimators.csv").exists()
    pngs = sorted(p.stem for p in (rep / "figures").glob("*.png"))
    svgs = sorted(p.stem for p in (rep / "figures").glob("*.svg"))
    assert pngs == svgs
    for stem in (
        "scaling_flops_e350",
        "scaling_train_step_s_e10",
        "depth_vs_width_flops",
        "resolution_optimal",
        "pareto_train_step_s",
        "pareto_infer_s",
        "pareto_flops",
        "pareto_params",
    ):
        assert stem in pngs
    svg = (rep / "figures" / "scaling_flops_e350.svg").read_text()
    assert "FLOPs per image" in svg and "top-1 error" in svg and "90% CI" in svg
    assert "Pareto-optimal" in (rep / "figures" / "pareto_train_step_s.svg").read_text()


def test_empty_sweep_dir_exits_2(tmp_path, capsys):
    SweepLayout(tmp_path / "s").cells.mkdir(parents=True)
    assert main([str(tmp_path / "s")]) == 2
    assert "empty sweep directory" in capsys.readouterr().err


def test_no_completed_cells_exits_1(tmp_path, capsys, paper_table):
    t = paper_table().head(6)
    S.write_sweep(tmp_path / "s", t, statuses={i: "failed" for i in range(5)} | {5: "running"})
    assert main([str(tmp_path / "s"), "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert "no completed cells" in err and "5 failed" in err
    assert len(pd.read_csv(SweepLayout(tmp_path / "s").report / "summary.csv")) == 6


def test_mixed_datasets_are_analysed_separately(sweep_dir, tmp_path, capsys, paper_table):
    paper_table(dataset="imagenet", seed=5).to_csv(tmp_path / "other.csv", index=False)
    rc = main(
        [
            str(sweep_dir),
            str(tmp_path / "other.csv"),
            "--out",
            str(tmp_path / "rep"),
            "--no-figures",
            "--n-boot",
            "100",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "rep" / "recommendations.json").read_text())
    assert rec["dataset"] == "imagenet"  # the dataset with the most cells is the headline
    assert set(rec["datasets"]) == {"imagenet", "fashion_mnist"}
    assert rec["datasets"]["fashion_mnist"]["depth_vs_width"]["350"]["winner"] == "depth"
    assert any("analysed separately" in n for n in rec["notes"])
    fits = pd.read_csv(tmp_path / "rep" / "fits.csv")
    assert set(fits["dataset"]) == {"imagenet", "fashion_mnist"}


@pytest.mark.parametrize(
    "argv_fn, msg",
    [
        (lambda p: [str(p / "missing.csv"), "--out", str(p / "o")], "no such file"),
        (lambda p: [str(p / "bad.csv"), "--out", str(p / "o")], "missing required column"),
        (lambda p: [str(p / "bad.csv"), str(p / "bad.csv")], "--out DIR is required"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, argv_fn, msg):
    pd.DataFrame({"depth": [1], "width": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main(argv_fn(tmp_path)) == 2
    assert msg in capsys.readouterr().err


def test_top1_in_percent_says_divide_by_100_in_the_error(tmp_path, capsys, paper_table):
    path = S.write_sweep(tmp_path / "s", paper_table().head(6))
    for d in SweepLayout(path).cells.iterdir():  # a record written by a tool that reports percent
        rec = json.loads(CellLayout(d).record.read_text())
        rec["final"] = {k: v * 100 if isinstance(v, float) else v for k, v in rec["final"].items()}
        CellLayout(d).record.write_text(json.dumps(rec))
    assert main([str(tmp_path / "s"), "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert "no completed cells to analyse (6 completed)" in err
    assert "6 x top1 outside [0, 1] (a percentage? divide by 100)" in err
