"""scripts/calibrate.py --tiny runs end to end (in-process) and writes a well-formed report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    """The script as a module (scripts/ is not a package); run in-process to spare the imports."""
    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "scripts" / "calibrate.py")
    cal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cal)
    return cal


def test_tiny_calibration_report_is_well_formed(tmp_path, capsys):
    out = tmp_path / "cal.json"
    assert _script().main(["--tiny", "--out", str(out)]) == 0
    assert "| form | quantity | n | coverage |" in capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert rep["meta"]["tables"] == 1 and set(rep["meta"]["forms"]) == {"additive", "product", "powered"}
    assert len(rep["tables"]) == 3
    seen = {(s["form"], s["quantity"]) for s in rep["summary"]}
    for form in ("additive", "product", "powered"):
        assert {(form, "k"), (form, "dvw")} <= seen
    for s in rep["summary"]:
        assert s["n"] >= 0
        assert s["coverage"] is None or 0.0 <= s["coverage"] <= 1.0
        assert s["median_width"] is None or s["median_width"] >= 0
        if s["quantity"] in ("k", "dvw"):
            assert 0.0 <= s["verdict_right"] + s["verdict_wrong"] <= 1.0
    for t in rep["tables"]:
        assert t["k"]["truth"] > 0 and t["k"]["ci"][0] <= t["k"]["ci"][1]
        assert t["resolution_verdict"]["truth"] in ("slower", "not_slower")


def test_bad_arguments_are_rejected(capsys):
    cal = _script()
    for argv, msg in ((["--forms", "ces"], "unknown form"), (["--tables", "0"], "--tables >= 1")):
        with pytest.raises(SystemExit) as e:
            cal.main(argv)
        assert e.value.code == 2 and msg in capsys.readouterr().err
