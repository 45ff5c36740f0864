"""Every markdown table row of the report closes with `|`: text after it is dropped by markdown."""

from __future__ import annotations

from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import Settings
from rsscale.analysis.report import write_report
from tests.analysis.conftest import paper_table


def test_inconclusive_reason_is_a_cell_of_its_row(tmp_path):
    t = paper_table(epochs=(10,))
    t = t[~((t["resolution"] == 128) & (t["width"] > 0.5))]  # the width path at 128 px: 2 points
    write_report(normalize(t), tmp_path, Settings(n_boot=50), figures=False)
    md = (tmp_path / "recommendations.md").read_text()
    rows = [line.rstrip() for line in md.splitlines() if line.startswith("|")]
    assert rows and [r for r in rows if not r.endswith("|")] == []
    why = "a path has fewer than 3 distinct compute values"
    (row,) = [r for r in rows if why in r and r.startswith("| 10 | 128 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = next(r for r in rows if "paths (law, n)" in r)
    assert len(cells) == header.count("|") - 1 and cells[-1] == why
