"""Figures (matplotlib, Agg backend): scaling curves with CI bands, depth-vs-width differences,
compute-optimal resolution, Pareto frontiers. Every figure is saved as PNG (150 dpi) and SVG.

Made for a slide: every figure is drawn under STYLE (ticks 11 pt, so at least ~9.5 pt once a
3-panel-wide figure is shrunk to a 10-inch slide), log axes carry 3+ labelled ticks, a legend shows
a band only where one is drawn, and a grid has as many panels as there is data for."""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path
from typing import Any

from rsscale.mpl_env import quiet_matplotlib

quiet_matplotlib()
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from rsscale.analysis.efficientnet import EFFICIENTNET_EXPONENT, efficientnet_table_exponent  # noqa: E402
from rsscale.analysis.pareto import COSTS, pareto_mask  # noqa: E402
from rsscale.analysis.regimes import label as regime_label  # noqa: E402
from rsscale.analysis.regimes import regime_keys  # noqa: E402
from rsscale.analysis.regimes import sentence as regime_sentence  # noqa: E402
from rsscale.analysis.study import Analysis  # noqa: E402

STRAT_COLOR = {"depth": "tab:blue", "width": "tab:orange", "resolution": "tab:green"}
MEASURE_LABEL = {
    "flops": "forward FLOPs per image (2 x MACs)",
    "train_step_s": "measured train-step time (s per step)",
}
MEASURE_WORD = {"flops": "FLOPs", "train_step_s": "train-step time"}
MAX_PANELS = 8
MAX_COLS = 3  # panels per row: wider figures shrink their text below ~9 pt on a slide
DPI = 150
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 13,
    "savefig.dpi": DPI,
}
_PLAIN = FuncFormatter(lambda v, _: f"{v:.3g}")
# mantissas of labelled log ticks, coarsest first: the first set giving 3+ ticks in range is used
_MANTISSAS = (
    (1.0,),
    (1.0, 3.0),
    (1.0, 2.0, 5.0),
    (1.0, 2.0, 3.0, 5.0, 7.0),
    (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
)


def styled(fn):
    """Draw the figure under STYLE, without touching the caller's rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def epochs_label(e: float) -> str:
    """'1 epoch', '10 epochs', '0.5 epochs'."""
    return f"{_k(e)} epoch" + ("" if float(e) == 1 else "s")


def log_ticks(lo: float, hi: float, max_ticks: int = 5) -> list[float]:
    """3 to `max_ticks` well-spaced tick values in [lo, hi] for a log axis (1-2-5..., then finer
    mantissas when the range holds few decades; every k-th decade when it holds many)."""
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return []
    ticks: list[float] = []
    for subs in _MANTISSAS:
        ticks = [
            m * 10.0**k
            for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for m in subs
            if lo * (1 - 1e-9) <= m * 10.0**k <= hi * (1 + 1e-9)
        ]
        if len(ticks) >= 3:
            break
    if len(ticks) < 3:  # under a factor ~1.5: evenly spaced round values, as on a linear axis
        ticks = [float(t) for t in MaxNLocator(nbins=4).tick_values(lo, hi) if lo <= t <= hi and t > 0]
    if len(ticks) > max_ticks:
        ticks = ticks[:: math.ceil(len(ticks) / max_ticks)]
    return ticks


def _set_log_ticks(axis, lo: float, hi: float, max_ticks: int = 4) -> None:
    """Labelled major ticks from log_ticks; unlabelled minor ticks at every integer mantissa."""
    ticks = log_ticks(lo, hi, max_ticks)
    if len(ticks) >= 2:
        axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(_eng))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    axis.set_minor_formatter(NullFormatter())


def _plain_y(ax):
    """Readable labels on a log y axis (0.12, 0.14, ... on a short range), 3+ of them."""
    lo, hi = ax.get_ylim()
    _set_log_ticks(ax.yaxis, lo, hi, max_ticks=6)  # stacked labels: room for one more
    ax.set_ylim(lo, hi)


def _eng(v: float, _=None) -> str:
    """Short log-axis labels: 20M, 1.5G, 0.2 (no 2x10^7 mathtext that collides with its neighbours)."""
    if v <= 0:
        return ""
    for f, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:.3g}{suffix}"
    return f"{v:.3g}"


def _log_x(ax, values=None):
    """Log x axis with 3+ well-spaced labelled ticks over the view (see log_ticks)."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if values is not None and len(values):
        v = np.asarray(values, float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:  # the view: the data plus a margin of 5% of the log range on each side
            pad = 0.05 * max(math.log10(v.max() / v.min()), 0.1)
            lo, hi = v.min() / 10**pad, v.max() * 10**pad
    _set_log_ticks(ax.xaxis, lo, hi)
    ax.set_xlim(lo, hi)


def _regime(an: Analysis, key: str | float) -> str:
    """A regime's title: epochs (x training images) and its measured generalisation gap, or
    short / long relative to the other regimes when no gap was recorded."""
    key = key if isinstance(key, str) else _k(key)
    info = an.regimes.get(key)
    if info is None:
        return epochs_label(float(key)) if key.replace(".", "").isdigit() else key
    text = regime_label(info)
    if info.get("generalization_gap") is not None:
        return f"{text} (gap {info['generalization_gap']:+.3f})"
    eps = sorted(v["epochs"] for v in an.regimes.values())
    if len(an.regimes) < 2:
        return text
    word = "short" if info["epochs"] == eps[0] else ("long" if info["epochs"] == eps[-1] else "medium")
    return f"{text} ({word} training)"


def _verdict_line(rec: dict[str, Any]) -> str:
    w, conf = rec.get("winner", "?"), rec.get("confidence")
    text = f"verdict: {w}" + (f" (confidence {conf:.2f})" if conf is not None else "")
    mdd = (rec.get("power") or {}).get("minimal_detectable_difference")
    if mdd is not None and math.isfinite(mdd):
        text += f"\nminimal detectable difference {mdd:.3f}"
    return text


def _k(v: float) -> str:
    v = float(v)
    return str(int(v)) if v == int(v) else f"{v:g}"


def save(fig, out_dir: Path, name: str) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{name}.{ext}"
        fig.savefig(p, dpi=DPI if ext == "png" else None, bbox_inches="tight")
        paths.append(str(p))
    plt.close(fig)
    return paths


def grid_shape(n: int, max_cols: int = MAX_COLS) -> tuple[int, int]:
    """(rows, cols) for n panels: as few rows as max_cols allows, the columns balanced over them
    (5 panels: 3 + 2, not 4 + 1)."""
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def _grid(n: int, max_cols: int = MAX_COLS, size: float = 3.8):
    """n panels and no empty ones: a short last row is centred (each panel spans 2 half-columns)."""
    rows, cols = grid_shape(n, max_cols)
    fig = plt.figure(figsize=(size * cols + 0.6, size * 0.85 * rows + 1.4), layout="constrained")
    gs = fig.add_gridspec(rows, 2 * cols)
    axes = []
    for i in range(n):
        r, c = divmod(i, cols)
        shift = cols - (n - r * cols) if r == rows - 1 else 0  # half-columns left empty in a short row
        axes.append(fig.add_subplot(gs[r, 2 * c + shift : 2 * c + shift + 2]))
    return fig, np.array(axes)


def pick(values: list, k: int = MAX_PANELS) -> list:
    """At most `k` of `values`, evenly spread (first and last kept): panels stay readable."""
    if len(values) <= k:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


@styled
def scaling_curves(
    an: Analysis, df: pd.DataFrame, measure: str, regime: str | float, out_dir: Path, prefix: str = ""
) -> list[str]:
    """Error vs compute in one regime (epochs, training-set size): one panel per resolution,
    depth and width paths."""
    regime = regime if isinstance(regime, str) else _k(regime)  # an epoch budget: its plain key
    d = df[(regime_keys(df) == regime) & df["usable"]] if len(df) else df
    d = d[np.isfinite(d[measure].to_numpy(float)) & (d[measure].to_numpy(float) > 0)]
    if d.empty:
        return []
    res_all = sorted(d["resolution"].unique())
    res = pick(res_all)
    fig, axes = _grid(len(res))
    ci = an.settings.ci_level
    for ax, r in zip(axes, res):
        g = d[d["resolution"] == r]
        ax.scatter(
            g[measure], g["error"], s=10, color="0.75", label="all cells", zorder=1, rasterized=len(g) > 200
        )
        for strat in ("depth", "width"):
            p = an.find(strat, measure, an.regimes[regime]["epochs"], float(r), regime=regime)
            if p is None:
                continue
            cells = g[g["cell_id"].astype(str).isin(p.cell_ids)]
            col = STRAT_COLOR[strat]
            fixed = ", ".join(f"{k} {_k(v)}" for k, v in p.fixed.items())
            ax.scatter(
                cells[measure], cells["error"], s=22, color=col, zorder=3, label=f"{strat} path ({fixed})"
            )
            f = p.fit
            if f.law != "none":
                C = np.geomspace(f.c_range[0], f.c_range[1], 60)
                ax.plot(C, f.predict(C), color=col, lw=1.6, zorder=4, label=f"{strat} fit ({f.law})")
                lo, hi = f.band(C, ci)
                if _visible_band(lo, hi):
                    ax.fill_between(
                        C, lo, hi, color=col, alpha=0.2, lw=0, zorder=2, label=f"{strat} fit {ci:.0%} CI"
                    )
        _log_x(ax, g[measure])
        ax.set_yscale("log")
        ax.set_title(f"resolution {_k(r)} px")
        ax.set_xlabel(MEASURE_LABEL[measure])
        ax.set_ylabel("top-1 error (fraction)")
        ax.grid(True, which="both", alpha=0.3)
        _plain_y(ax)
    _legend(fig, axes)
    more = "" if len(res) == len(res_all) else f" ({len(res)} of {len(res_all)} resolutions shown)"
    rec = an.depth_vs_width.get(regime, {})
    rec = rec if measure == "flops" else rec.get("time", {})
    conf = rec.get("confidence")
    fig.suptitle(
        f"{an.dataset}: top-1 error vs {MEASURE_WORD[measure]}, {_regime(an, regime)}{more}\n"
        f"depth vs width: {rec.get('winner', '?')}"
        + (f" (confidence {conf:.2f})" if conf is not None else "")
    )
    name = regime if regime.replace(".", "").isdigit() else regime.replace("ep-", "_n").replace("img", "")
    return save(fig, out_dir, f"{prefix}scaling_{measure}_e{name}")


def _visible_band(lo, hi) -> bool:
    """A CI band worth a legend entry: finite, and not collapsed onto its curve."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return bool(np.isfinite(lo).all() and np.isfinite(hi).all() and np.max(np.abs(hi - lo)) > 1e-9)


def _legend(fig, axes):
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend(
            [handles[k] for k in labels],
            labels,
            loc="outside lower center",
            ncol=min(3, len(labels)),
        )


@styled
def resolution_paths(
    an: Analysis, df: pd.DataFrame, measure: str, out_dir: Path, prefix: str = ""
) -> list[str]:
    paths = [p for p in an.paths if p.strategy == "resolution" and p.measure == measure]
    if not paths:
        return []
    fig, ax = plt.subplots(figsize=(6.8, 4.8), layout="constrained")
    cmap = plt.get_cmap("viridis")
    banded = False
    for i, p in enumerate(sorted(paths, key=lambda p: p.epochs)):
        col = cmap(i / max(len(paths) - 1, 1))
        g = df[df["cell_id"].astype(str).isin(p.cell_ids)]
        ax.scatter(g[measure], g["error"], color=col, s=20)
        f = p.fit
        if f.law != "none":
            C = np.geomspace(f.c_range[0], f.c_range[1], 60)
            ax.plot(C, f.predict(C), color=col, label=f"{epochs_label(p.epochs)} ({f.law})")
            lo, hi = f.band(C, an.settings.ci_level)
            if _visible_band(lo, hi):
                ax.fill_between(C, lo, hi, color=col, alpha=0.2, lw=0)
                banded = True
    _log_x(ax, df[df["cell_id"].astype(str).isin([c for p in paths for c in p.cell_ids])][measure])
    ax.set_yscale("log")
    ax.set_xlabel(MEASURE_LABEL[measure])
    ax.set_ylabel("top-1 error (fraction)")
    b = an.base
    ax.set_title(f"{an.dataset}: resolution scaling at depth {_k(b['depth'])}, width {_k(b['width'])}")
    ax.grid(True, which="both", alpha=0.3)
    _plain_y(ax)
    ax.legend(title=f"bands: {an.settings.ci_level:.0%} CI" if banded else None)
    return save(fig, out_dir, f"{prefix}resolution_paths_{measure}")


@styled
def depth_vs_width(an: Analysis, measure: str, out_dir: Path, prefix: str = "") -> list[str]:
    have = {k[0] for k in an.dvw_curves if k[1] == measure}
    eps = [g for g in an.regimes if g in have] + sorted(have - set(an.regimes))  # regime order
    if not eps:
        return []
    eps = pick(eps)
    fig, axes = _grid(len(eps))
    cmap = plt.get_cmap("plasma")
    ci = an.settings.ci_level
    q = (1 - ci) / 2
    for ax, e in zip(axes, eps):
        keys = sorted(k for k in an.dvw_curves if k[0] == e and k[1] == measure)
        for i, k in enumerate(pick(keys, 8)):
            cur = an.dvw_curves[k]
            col = cmap(i / max(len(keys) - 1, 1) * 0.85)
            ax.plot(cur["C"], cur["d"], color=col, label=f"res {_k(k[2])} px")
            db = cur["db"][np.isfinite(cur["db"]).all(1)]
            if len(db):
                ax.fill_between(
                    cur["C"], np.quantile(db, q, 0), np.quantile(db, 1 - q, 0), color=col, alpha=0.15, lw=0
                )
        ax.axhline(0, color="k", lw=0.8)
        rec = an.depth_vs_width.get(e, {})
        rec = rec if measure == "flops" else rec.get("time", {})
        margin = an.settings.equivalence_margin
        ax.axhspan(-margin, margin, color="0.5", alpha=0.08, lw=0, label=f"equivalence margin +-{margin:g}")
        _log_x(ax, np.concatenate([an.dvw_curves[k]["C"] for k in keys]))
        ax.set_title(f"{_regime(an, e)}: {rec.get('winner', '?')}")
        ax.text(
            0.98,
            0.97,
            _verdict_line(rec),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=10,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.6", "alpha": 0.9},
        )
        ax.set_xlabel(MEASURE_LABEL[measure])
        ax.set_ylabel("log err(depth) - log err(width)")
        ax.grid(True, which="both", alpha=0.3)
        ax.text(0.02, 0.03, "below 0: depth better", transform=ax.transAxes, fontsize=10, color="0.3")
    _legend(fig, axes)
    title = f"{an.dataset}: depth vs width at equal {MEASURE_WORD[measure]} ({ci:.0%} CI bands)"
    if measure == "flops" and an.cross_regime.get("verdict") and len(an.regimes) > 1:
        title += "\n" + "\n".join(textwrap.wrap("across regimes: " + regime_sentence(an.cross_regime), 110))
    fig.suptitle(title)
    return save(fig, out_dir, f"{prefix}depth_vs_width_{measure}")


@styled
def resolution_optimal(an: Analysis, out_dir: Path, prefix: str = "") -> list[str]:
    """Compute-optimal (Pareto-frontier) cells' resolution vs FLOPs, the surface estimate of the
    exponent with its CI band, the frontier slope, and EfficientNet's rule and table."""
    front = an.resolution_frontier
    rec = an.resolution
    if front is None or front.empty or front["resolution"].nunique() < 2:
        return []
    fig, ax = plt.subplots(figsize=(6.8, 4.8), layout="constrained")
    cmap = plt.get_cmap("viridis")
    eps = sorted(front["epochs"].unique())
    for i, e in enumerate(eps):
        g = front[front["epochs"] == e]
        ax.scatter(
            g["flops"],
            g["resolution"],
            color=cmap(i / max(len(eps) - 1, 1)),
            s=22,
            label=f"Pareto-frontier cells, {epochs_label(e)}",
        )
    C = np.geomspace(front["flops"].min(), front["flops"].max(), 50)
    lc = np.log(front["flops"].to_numpy(float))
    lr = np.log(front["resolution"].to_numpy(float))
    xm, ym = lc.mean(), lr.mean()
    k = rec.get("exponent")
    if k is not None:
        ax.plot(C, np.exp(ym + k * (np.log(C) - xm)), color="k", label=f"surface estimate: res ~ C^{k:.3f}")
    kb = an.resolution_boot
    if k is not None and kb is not None and np.isfinite(kb).any():
        kb = kb[np.isfinite(kb)]
        lines = np.exp(ym + kb[:, None] * (np.log(C)[None, :] - xm))
        q = (1 - an.settings.ci_level) / 2
        ax.fill_between(
            C,
            np.quantile(lines, q, 0),
            np.quantile(lines, 1 - q, 0),
            color="k",
            alpha=0.12,
            lw=0,
            label=f"{an.settings.ci_level:.0%} CI",
        )
    kf = rec.get("frontier", {}).get("exponent")
    if kf is not None:
        ax.plot(C, np.exp(ym + kf * (np.log(C) - xm)), color="0.5", lw=1, label=f"frontier slope C^{kf:.3f}")
    ax.plot(
        C,
        np.exp(ym + EFFICIENTNET_EXPONENT * (np.log(C) - xm)),
        "--",
        color="tab:red",
        label=f"EfficientNet compound rule C^{EFFICIENTNET_EXPONENT:.3f}",
    )
    kt = efficientnet_table_exponent()
    ax.plot(
        C,
        np.exp(ym + kt * (np.log(C) - xm)),
        ":",
        color="tab:red",
        label=f"EfficientNet B0-B7 table C^{kt:.3f}",
    )
    _log_x(ax, front["flops"])
    ax.set_yscale("log")
    ax.set_xlabel(MEASURE_LABEL["flops"])
    ax.set_ylabel("resolution (px)")
    ax.set_title(f"{an.dataset}: compute-optimal resolution: {rec.get('verdict')}")
    ax.grid(True, which="both", alpha=0.3)
    _plain_y(ax)
    ax.legend(fontsize=9)
    return save(fig, out_dir, f"{prefix}resolution_optimal")


@styled
def pareto(
    an: Analysis | None, df: pd.DataFrame, cost: str, out_dir: Path, prefix: str = "", dataset: str = ""
) -> list[str]:
    """Top-1 vs a cost, one panel per epoch budget; Pareto cells marked; base paths as curves."""
    d = df[df["usable"]]
    d = d[np.isfinite(d[cost].to_numpy(float)) & (d[cost].to_numpy(float) > 0)]
    if d.empty:
        return []
    eps = pick(sorted(d["epochs"].unique()))
    fig, axes = _grid(len(eps))
    for ax, e in zip(axes, eps):
        g = d[d["epochs"] == e]
        m = pareto_mask(g[cost].to_numpy(float), g["top1"].to_numpy(float))
        ax.scatter(g[cost], g["top1"], s=10, color="0.7", label="cells", zorder=1, rasterized=len(g) > 200)
        fr = g[m].sort_values(cost)
        ax.step(fr[cost], fr["top1"], where="post", color="tab:red", lw=1.0, zorder=2)
        ax.scatter(
            fr[cost],
            fr["top1"],
            s=30,
            facecolors="none",
            edgecolors="tab:red",
            zorder=5,
            label="Pareto-optimal",
        )
        if an is not None:
            for strat in ("depth", "width"):
                ps = [
                    p
                    for p in an.paths
                    if p.strategy == strat and p.measure == "flops" and p.epochs == float(e)
                ]
                for p in pick(sorted(ps, key=lambda p: p.resolution or 0), 6):
                    cells = g[g["cell_id"].astype(str).isin(p.cell_ids)].sort_values(cost)
                    if len(cells) >= 2:
                        ax.plot(
                            cells[cost],
                            cells["top1"],
                            "-o",
                            ms=3,
                            lw=1.0,
                            alpha=0.8,
                            color=STRAT_COLOR[strat],
                            label=f"{strat}-scaled family",
                            zorder=3,
                        )
        _log_x(ax, g[cost])
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel("top-1 accuracy (fraction)")
        ax.set_title(_regime(an, float(e)) if an is not None else epochs_label(e))
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle(f"{dataset or (an.dataset if an else '')}: top-1 vs {COSTS[cost]}")
    return save(fig, out_dir, f"{prefix}pareto_{cost}")


def describe(files: list[str]) -> dict[str, Any]:
    return {"n_files": len(files), "files": files}
