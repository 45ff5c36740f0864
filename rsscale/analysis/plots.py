"""Figures (matplotlib, Agg backend): scaling curves with CI bands, depth-vs-width differences,
compute-optimal resolution, Pareto frontiers. Every figure is saved as PNG and SVG."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from rsscale.analysis.pareto import COSTS, pareto_mask  # noqa: E402
from rsscale.analysis.recommend import EFFICIENTNET_EXPONENT, Analysis, efficientnet_table_exponent  # noqa: E402
from rsscale.analysis.regimes import label as regime_label  # noqa: E402
from rsscale.analysis.regimes import regime_keys  # noqa: E402
from rsscale.analysis.regimes import sentence as regime_sentence  # noqa: E402

STRAT_COLOR = {"depth": "tab:blue", "width": "tab:orange", "resolution": "tab:green"}
MEASURE_LABEL = {
    "flops": "forward FLOPs per image (2 x MACs)",
    "train_step_s": "measured train-step time (s per step)",
}
MEASURE_WORD = {"flops": "FLOPs", "train_step_s": "train-step time"}
MAX_PANELS = 8
_PLAIN = FuncFormatter(lambda v, _: f"{v:.3g}")


def _plain_y(ax):
    """Readable labels on a log y axis spanning less than a decade or two (0.12, 0.14, ...)."""
    ax.yaxis.set_major_formatter(_PLAIN)
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 30:
        ax.yaxis.set_minor_formatter(_PLAIN)
        ax.tick_params(axis="y", which="minor", labelsize=7)
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _eng(v: float, _=None) -> str:
    """Short log-axis labels: 20M, 1.5G, 0.2 (no 2x10^7 mathtext that collides with its neighbours)."""
    if v <= 0:
        return ""
    for f, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:.3g}{suffix}"
    return f"{v:.3g}"


def _log_x(ax, values=None):
    """Log x axis with a few well-spaced labelled ticks: 1-2-5 per decade when the data span under
    two decades, decades only beyond four; minor ticks unlabelled."""
    from matplotlib.ticker import LogLocator

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if values is not None and len(values):
        v = np.asarray(values, float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            lo, hi = v.min(), v.max()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if decades < 2 else ((1.0, 3.0) if decades < 4 else (1.0,))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(_eng))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8)


def _regime(an: Analysis, key: str | float) -> str:
    """A regime's title: epochs (x training images) and its measured generalisation gap, or
    short / long relative to the other regimes when no gap was recorded."""
    key = key if isinstance(key, str) else _k(key)
    info = an.regimes.get(key)
    if info is None:
        return f"{key} epochs"
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
        fig.savefig(p, dpi=110 if ext == "png" else None, bbox_inches="tight")
        paths.append(str(p))
    plt.close(fig)
    return paths


def _grid(n: int, max_cols: int = 4, size: float = 3.6):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols + 0.6, size * 0.85 * rows + 1.2), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _pick(values: list, k: int = MAX_PANELS) -> list:
    if len(values) <= k:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


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
    res = _pick(res_all)
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
                if np.isfinite(lo).all():
                    ax.fill_between(C, lo, hi, color=col, alpha=0.2, lw=0, zorder=2, label=f"{ci:.0%} CI")
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
    fig.suptitle(
        f"{an.dataset}: top-1 error vs {MEASURE_WORD[measure]}, {_regime(an, regime)}{more}; "
        f"depth vs width: {rec.get('winner', '?')}"
    )
    name = regime if regime.replace(".", "").isdigit() else regime.replace("ep-", "_n").replace("img", "")
    return save(fig, out_dir, f"{prefix}scaling_{measure}_e{name}")


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
            ncol=min(4, len(labels)),
            fontsize=8,
        )


def resolution_paths(
    an: Analysis, df: pd.DataFrame, measure: str, out_dir: Path, prefix: str = ""
) -> list[str]:
    paths = [p for p in an.paths if p.strategy == "resolution" and p.measure == measure]
    if not paths:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    cmap = plt.get_cmap("viridis")
    for i, p in enumerate(sorted(paths, key=lambda p: p.epochs)):
        col = cmap(i / max(len(paths) - 1, 1))
        g = df[df["cell_id"].astype(str).isin(p.cell_ids)]
        ax.scatter(g[measure], g["error"], color=col, s=20)
        f = p.fit
        if f.law != "none":
            C = np.geomspace(f.c_range[0], f.c_range[1], 60)
            ax.plot(C, f.predict(C), color=col, label=f"{_k(p.epochs)} epochs ({f.law})")
            lo, hi = f.band(C, an.settings.ci_level)
            if np.isfinite(lo).all():
                ax.fill_between(C, lo, hi, color=col, alpha=0.2, lw=0)
    _log_x(ax, df[df["cell_id"].astype(str).isin([c for p in paths for c in p.cell_ids])][measure])
    ax.set_yscale("log")
    ax.set_xlabel(MEASURE_LABEL[measure])
    ax.set_ylabel("top-1 error (fraction)")
    b = an.base
    ax.set_title(f"{an.dataset}: resolution scaling at depth {_k(b['depth'])}, width {_k(b['width'])}")
    ax.grid(True, which="both", alpha=0.3)
    _plain_y(ax)
    ax.legend(fontsize=8, title=f"bands: {an.settings.ci_level:.0%} CI")
    return save(fig, out_dir, f"{prefix}resolution_paths_{measure}")


def depth_vs_width(an: Analysis, measure: str, out_dir: Path, prefix: str = "") -> list[str]:
    have = {k[0] for k in an.dvw_curves if k[1] == measure}
    eps = [g for g in an.regimes if g in have] + sorted(have - set(an.regimes))  # regime order
    if not eps:
        return []
    eps = _pick(eps)
    fig, axes = _grid(len(eps))
    cmap = plt.get_cmap("plasma")
    ci = an.settings.ci_level
    q = (1 - ci) / 2
    for ax, e in zip(axes, eps):
        keys = sorted(k for k in an.dvw_curves if k[0] == e and k[1] == measure)
        for i, k in enumerate(_pick(keys, 8)):
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
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.6", "alpha": 0.9},
        )
        ax.set_xlabel(MEASURE_LABEL[measure])
        ax.set_ylabel("log err(depth) - log err(width)")
        ax.grid(True, which="both", alpha=0.3)
        ax.text(0.02, 0.03, "below 0: depth better", transform=ax.transAxes, fontsize=7, color="0.3")
    _legend(fig, axes)
    title = f"{an.dataset}: depth vs width at equal {MEASURE_WORD[measure]} ({ci:.0%} CI bands)"
    if measure == "flops" and an.cross_regime.get("verdict") and len(an.regimes) > 1:
        title += "\n" + "\n".join(textwrap.wrap("across regimes: " + regime_sentence(an.cross_regime), 110))
    fig.suptitle(title)
    return save(fig, out_dir, f"{prefix}depth_vs_width_{measure}")


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
            label=f"Pareto-frontier cells, {_k(e)} epochs",
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
    ax.legend(fontsize=7)
    return save(fig, out_dir, f"{prefix}resolution_optimal")


def pareto(
    an: Analysis | None, df: pd.DataFrame, cost: str, out_dir: Path, prefix: str = "", dataset: str = ""
) -> list[str]:
    """Top-1 vs a cost, one panel per epoch budget; Pareto cells marked; base paths as curves."""
    d = df[df["usable"]]
    d = d[np.isfinite(d[cost].to_numpy(float)) & (d[cost].to_numpy(float) > 0)]
    if d.empty:
        return []
    eps = _pick(sorted(d["epochs"].unique()))
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
                for p in _pick(sorted(ps, key=lambda p: p.resolution or 0), 6):
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
        ax.set_title(_regime(an, float(e)) if an is not None else f"{_k(e)} epochs")
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle(f"{dataset or (an.dataset if an else '')}: top-1 vs {COSTS[cost]}")
    return save(fig, out_dir, f"{prefix}pareto_{cost}")


def all_figures(an: Analysis, df: pd.DataFrame, out_dir: Path, prefix: str = "") -> list[str]:
    files: list[str] = []
    d = df[df["usable"]]
    for m in ("flops", "train_step_s"):
        if not np.isfinite(d[m].to_numpy(float)).any():
            continue
        for g in _pick(list(an.regimes), 4):
            files += scaling_curves(an, d, m, g, out_dir, prefix)
        files += depth_vs_width(an, m, out_dir, prefix)
        files += resolution_paths(an, d, m, out_dir, prefix)
    files += resolution_optimal(an, out_dir, prefix)
    for c in COSTS:
        if c in d and np.isfinite(d[c].to_numpy(float)).any():
            files += pareto(an, d, c, out_dir, prefix)
    return files


def describe(files: list[str]) -> dict[str, Any]:
    return {"n_files": len(files), "files": files}
