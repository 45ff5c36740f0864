"""Figures read at a glance: log-axis labels that do not collide, the verdict on the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from rsscale.analysis import plots
from rsscale.analysis import synthetic as S
from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import Settings, analyze_dataset


@pytest.mark.parametrize("lo,hi", [(6.5e6, 5.3e7), (2.4e7, 3.9e8), (1e6, 1e9), (1e3, 1e12), (0.02, 0.9)])
def test_log_x_labels_do_not_overlap(lo, hi):
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    x = np.geomspace(lo, hi, 7)
    ax.plot(x, x)
    plots._log_x(ax, x)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = sorted(
        (t.get_window_extent(r) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()),
        key=lambda b: b.x0,
    )
    inside = [b for b in boxes if ax.get_window_extent(r).x0 - 5 <= b.x0 <= ax.get_window_extent(r).x1 + 5]
    assert len(inside) >= 2
    assert all(a.x1 < b.x0 for a, b in zip(inside, inside[1:]))
    assert not any("times" in t.get_text() or "^" in t.get_text() for t in ax.get_xticklabels())
    plt.close(fig)


def test_depth_vs_width_figure_states_regime_and_verdict(tmp_path, monkeypatch):
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text stays text in the SVG
    t = S.make_table(
        depths=(26, 50, 101, 152, 200, 270),
        widths=(0.25, 0.35, 0.5, 0.7, 1.0, 1.4),
        resolutions=(16,),
        epochs=(10, 350),
        laws=S.paper_like_laws(),
        noise=0.02,
        seed=0,
    )
    an = analyze_dataset(normalize(t), Settings(n_boot=200))
    files = plots.depth_vs_width(an, "flops", tmp_path)
    svg = next(f for f in files if f.endswith(".svg"))
    text = Path(svg).read_text()
    v350 = an.depth_vs_width["350"]
    assert "350 epochs (long training)" in text and "10 epochs (short training)" in text
    assert f"verdict: {v350['winner']} (confidence {v350['confidence']:.2f})" in text
    assert "minimal detectable difference" in text and "equivalence margin" in text
    curves = plots.scaling_curves(an, normalize(t), "flops", 350.0, tmp_path)
    text = Path(next(f for f in curves if f.endswith(".svg"))).read_text()
    assert "long training" in text and f"depth vs width: {v350['winner']}" in text
