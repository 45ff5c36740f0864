"""Figures fit for a slide: 150 dpi, one tick size of 11 pt, 3+ labelled ticks per log axis,
'1 epoch', no empty panels, and a CI entry in a legend only where a band is drawn."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from rsscale.analysis import plots
from rsscale.analysis.load import normalize
from rsscale.analysis.recommend import Settings, analyze_dataset
from tests.analysis import synthetic_laws as S


def _table(resolutions, epochs, noise=0.02):
    t = S.make_table(
        depths=(26, 50, 101), widths=(0.25, 0.5, 1.0), resolutions=resolutions, epochs=epochs,
        noise=noise, time_noise=noise,
    )  # fmt: skip
    t["cell_id"] = [f"c{i}" for i in range(len(t))]
    return normalize(t)


@pytest.fixture
def caught(monkeypatch):
    """Every figure as it is saved, before it is closed."""
    figs = []
    real = plots.save

    def keep(fig, out_dir, name):
        fig.canvas.draw()
        figs.append((name, fig, _facts(fig)))
        return real(fig, out_dir, name)

    monkeypatch.setattr(plots, "save", keep)
    return figs


def _facts(fig):
    r = fig.canvas.get_renderer()
    facts = {"axes": [], "texts": [t.get_text() for t in fig.findobj(matplotlib.text.Text)]}
    for ax in fig.axes:
        box = ax.get_window_extent(r)
        sizes, labelled = set(), {}
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks = [t for t in axis.get_majorticklabels() + axis.get_minorticklabels() if t.get_text()]
            ticks = [t for t in ticks if t.get_visible()]
            sizes |= {t.get_fontsize() for t in ticks}
            lo, hi = (box.x0, box.x1) if name == "x" else (box.y0, box.y1)
            ext = [t.get_window_extent(r) for t in ticks]
            pos = [(e.x0 + e.x1) / 2 if name == "x" else (e.y0 + e.y1) / 2 for e in ext]
            labelled[name] = (axis.get_scale(), sum(1 for p in pos if lo - 1 <= p <= hi + 1))
        facts["axes"].append({"has_data": ax.has_data(), "sizes": sizes, "labelled": labelled})
    return facts


def test_every_figure_is_slide_ready(tmp_path, caught):
    df = _table((64, 96, 128, 160, 192), (1,))  # 5 resolutions: the 5-panel grid of the issue
    an = analyze_dataset(df[df["usable"]], Settings(n_boot=20), "synthetic")
    files = plots.scaling_curves(an, df, "flops", 1.0, tmp_path) + plots.depth_vs_width(an, "flops", tmp_path)
    files += plots.resolution_paths(an, df, "flops", tmp_path) + plots.resolution_optimal(an, tmp_path)
    files += plots.pareto(an, df, "flops", tmp_path)
    assert len(caught) == 5
    for name, _fig, facts in caught:
        assert all(a["has_data"] for a in facts["axes"]), f"{name}: an empty panel"
        for a in facts["axes"]:
            assert len(a["sizes"]) == 1 and min(a["sizes"]) >= 10, f"{name}: tick sizes {a['sizes']}"
            for axis, (scale, n) in a["labelled"].items():
                if scale == "log":
                    assert n >= 3, f"{name}: {axis} axis has {n} labelled ticks"
        assert not [t for t in facts["texts"] if "1 epochs" in t], name
    scaling = next(f for n, f, _ in caught if n == "scaling_flops_e1")
    assert len(scaling.axes) == 5 and scaling.get_size_inches()[0] <= 12.5  # 3 + 2, not 4 + 1 in a 2 x 4
    pngs = [f for f in files if f.endswith(".png")]
    for p in pngs:
        assert Image.open(p).info["dpi"][0] == pytest.approx(150, abs=1), p


def test_epochs_label_and_grid_shape():
    assert plots.epochs_label(1) == "1 epoch" and plots.epochs_label(10.0) == "10 epochs"
    assert [plots.grid_shape(n) for n in range(1, 9)] == [
        (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (2, 3), (3, 3), (3, 3),
    ]  # fmt: skip


def _band_width(c) -> float:
    """The widest vertical extent of a fill_between polygon at one x (0 for other collections)."""
    if not isinstance(c, PolyCollection) or not c.get_paths():
        return 0.0
    v = c.get_paths()[0].vertices
    xs = np.round(np.log10(np.maximum(v[:, 0], 1e-300)), 9)
    return max((np.ptp(v[xs == x, 1]) for x in np.unique(xs)), default=0.0)


def test_ci_legend_entries_only_for_drawn_bands(tmp_path, caught):
    df = _table((64, 96), (1, 10), noise=0.0)  # 2 resolutions: each resolution path's band collapses
    an = analyze_dataset(df[df["usable"]], Settings(n_boot=50), "synthetic")
    plots.resolution_paths(an, df, "flops", tmp_path)
    plots.scaling_curves(an, df, "flops", 1.0, tmp_path)
    for name, fig, _ in caught:
        bands = [c for ax in fig.axes for c in ax.collections if _band_width(c) > 1e-9]
        legends = [leg for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg is not None]
        ci = [
            t.get_text()
            for leg in legends
            for t in [leg.get_title(), *leg.get_texts()]
            if "CI" in t.get_text()
        ]
        drawn = {c.get_label() for c in bands}
        for text in ci:
            assert text in drawn or (text.startswith("bands:") and bands), f"{name}: {text!r} without a band"


@pytest.mark.parametrize(
    "lo,ratio", [(3.2e5, 2.5), (1e6, 1.15), (2e7, 1.9), (5e8, 7), (1e5, 300), (1e6, 1e7)]
)
def test_log_axes_label_3_ticks_without_overlap_at_slide_size(lo, ratio):
    import matplotlib.pyplot as plt

    with plt.rc_context(plots.STYLE):
        fig, ax = plt.subplots(figsize=(3.4, 3.0))  # one panel of a 3-wide grid
        x = np.geomspace(lo, lo * ratio, 7)
        ax.plot(x, x)
        plots._log_x(ax, x)
        plots._plain_y(ax)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        for labels, lo_edge, hi_edge in (
            (ax.get_xticklabels(), "x0", "x1"),
            (ax.get_yticklabels(), "y0", "y1"),
        ):
            boxes = sorted(
                (t.get_window_extent(r) for t in labels if t.get_text()), key=lambda b: getattr(b, lo_edge)
            )
            assert len(boxes) >= 3, [t.get_text() for t in labels]
            assert all(getattr(a, hi_edge) < getattr(b, lo_edge) for a, b in zip(boxes, boxes[1:]))
        plt.close(fig)
