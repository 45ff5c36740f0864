"""Calibration of the analysis: how often its 90% intervals cover the truth, how wide they are,
and how often its verdicts are right, on many results tables drawn from known laws.

    .venv/bin/python scripts/calibrate.py [--tables 60] [--n-boot 300] [--jobs 1] [--out cal.json]
    .venv/bin/python scripts/calibrate.py --tiny     # a few seconds: one small table per form

Forms (rsscale.analysis.synthetic): ``additive`` and ``product`` (the two forms the joint law
fits) and ``powered`` (the additive sum raised to rho != 1: a form neither fitted law contains).
Every table draws its law's exponents, its noise (1-4% log-normal), failed cells (0-10%),
missing cells (0-20%) and cells run twice (0-20%) at random, then goes through
``analyze_dataset`` exactly as a user's sweep would. Checked against the law's true answers:

- ``k``: the headline compute-optimal resolution exponent's interval;
- ``dvw``: the depth-vs-width statistic's interval (the truth computed from the law over the
  same compute range and resolutions as the analysis used), and its winner;
- ``path c``: each depth/width/resolution FLOPs path's exponent interval, whatever law the path
  chose (additive and product forms only, where a path is a power law plus a constant; ``--out``
  keeps each path's law, so coverage per law can be read from the JSON);
- the resolution verdict (slower / not_slower than EfficientNet's 0.2016).

Prints a Markdown table (one row per form and quantity) and writes every table's numbers as JSON
with --out. Targets: coverage >= 85% (above 97%: wider than needed), wrong winner < 5%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.analysis import synthetic as S  # noqa: E402
from rsscale.analysis.load import normalize  # noqa: E402
from rsscale.analysis.recommend import EFFICIENTNET_EXPONENT, Settings, analyze_dataset  # noqa: E402

FORMS = ("additive", "product", "powered")
GRID = dict(  # 7 compute values per path, as in the default depth x width grid
    depths=(26, 38, 50, 75, 101, 152, 200),
    widths=(0.5, 0.63, 0.79, 1.0, 1.26, 1.59, 2.0),
    resolutions=tuple(int(v) for v in np.geomspace(32, 512, 6)),
    epochs=(100.0,),
)
TINY_GRID = dict(
    depths=(26, 50, 101, 200),
    widths=(0.5, 0.7, 1.0, 1.4),
    resolutions=(32, 64, 128, 256),
    epochs=(100.0,),
)


def draw_law(form: str, rng: np.random.Generator) -> Any:
    """A random law of the form, with exponents that put k on both sides of 0.2016."""
    u = rng.uniform
    if form == "additive":
        return S.AdditiveLaw(
            e_inf=u(0.02, 0.1),
            a_depth=u(0.05, 0.2),
            alpha=u(0.2, 1.0),
            a_width=u(0.05, 0.2),
            beta=u(0.3, 1.2),
            a_res=u(0.05, 0.2),
            gamma=u(0.25, 2.0),
            r0=32,
        )
    if form == "product":
        return S.ProductLaw(
            e_inf=u(0.02, 0.1),
            a_model=u(0.1, 0.3),
            a_d=u(0.15, 0.6),
            a_w=u(0.2, 1.0),
            a_res=u(0.1, 0.3),
            gamma=u(0.3, 2.5),
            r0=32,
        )
    if form == "powered":
        return S.PoweredLaw(
            e_inf=u(0.02, 0.1),
            a_depth=u(0.05, 0.2),
            alpha=u(0.2, 1.0),
            a_width=u(0.05, 0.2),
            beta=u(0.3, 1.2),
            a_res=u(0.05, 0.2),
            gamma=u(0.25, 2.0),
            rho=float(rng.choice([0.6, 1.4])) * u(0.9, 1.1),
            r0=32,
        )
    raise ValueError(f"unknown form {form!r} (known: {', '.join(FORMS)})")


def one_table(form: str, i: int, n_boot: int, tiny: bool) -> dict[str, Any]:
    """Draw table i of a form, analyse it, and score every interval and verdict."""
    rng = np.random.default_rng([FORMS.index(form), i])
    grid = TINY_GRID if tiny else GRID
    law = draw_law(form, rng)
    noise = float(rng.uniform(0.01, 0.04))
    t = S.make_table(
        **grid,
        laws=law,
        noise=noise,
        seed=int(rng.integers(1 << 31)),
        fail_frac=float(rng.uniform(0, 0.1)),
        drop_frac=0.0 if tiny else float(rng.uniform(0, 0.2)),
        extra_rep_frac=0.0 if tiny else float(rng.uniform(0, 0.2)),
    )
    df = normalize(t)
    t0 = time.perf_counter()
    an = analyze_dataset(df, Settings(n_boot=n_boot, seed=i), f"{form}-{i}")
    out: dict[str, Any] = {"form": form, "table": i, "noise": noise, "n_usable": int(df["usable"].sum())}
    out["seconds"] = time.perf_counter() - t0
    e = "100"
    k_true = float(law.resolution_exponent())
    res = an.resolution
    out["k"] = {"truth": k_true, "estimate": res.get("exponent"), "ci": res.get("ci")}
    out["k"]["favoured_form"] = (res.get("form") or {}).get("favoured")
    true_side = "slower" if k_true < EFFICIENTNET_EXPONENT else "not_slower"
    out["resolution_verdict"] = {"truth": true_side, "verdict": res.get("verdict")}
    # depth vs width: the truth over the resolutions and compute ranges the analysis compared
    u = df[df["usable"]]
    dvw = an.depth_vs_width.get(e, {})
    per_r = []
    for r, v in dvw.get("by_resolution", {}).items():
        if "mean_log_error_diff" not in v:
            continue
        g = u[u["resolution"] == float(r)]
        dp = g[np.isclose(g["width"], an.base["width"])]["depth"].unique()
        wp = g[np.isclose(g["depth"], an.base["depth"])]["width"].unique()
        d = S.true_dvw(law, dp, wp, (float(r),), base_depth=an.base["depth"], base_width=an.base["width"])
        if d is not None:
            per_r.append(d)
    d_true = float(np.mean(per_r)) if per_r else None
    out["dvw"] = {
        "truth": d_true,
        "estimate": dvw.get("mean_log_error_diff"),
        "ci": dvw.get("mean_log_error_diff_ci"),
        "winner": dvw.get("winner"),
    }
    # path exponents (FLOPs paths, whichever law each path chose) where the law's paths are a
    # power law plus a constant: every candidate law with an exponent c contains that curve
    # (offset with C0 -> 0, ceiling with alpha -> 0), whose c is then the truth
    pe = law.path_exponents()
    paths = []
    if pe:
        for p in an.paths:
            row = p.fit.as_row()
            if p.measure != "flops" or not np.isfinite(row.get("c_lo", np.nan)):
                continue
            paths.append(
                {
                    "strategy": p.strategy,
                    "law": p.fit.law,
                    "truth": pe[p.strategy],
                    "estimate": row.get("c"),
                    "ci": [row["c_lo"], row["c_hi"]],
                }
            )
    out["paths"] = paths
    return out


def _covers(ci, truth) -> bool | None:
    if ci is None or truth is None:
        return None
    return bool(ci[0] <= truth <= ci[1])


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (form, quantity): coverage of the 90% interval, median width, verdicts."""
    out = []
    for form in FORMS:
        rs = [r for r in rows if r["form"] == form]
        if not rs:
            continue
        qty: dict[str, list[tuple[Any, Any]]] = {"k": [], "dvw": []}
        for r in rs:
            qty["k"].append((r["k"]["ci"], r["k"]["truth"]))
            qty["dvw"].append((r["dvw"]["ci"], r["dvw"]["truth"]))
            for p in r["paths"]:
                # a log-linear fit (paths with 4 distinct values) has no asymptote: its c is the
                # local slope, not the exponent; shown on a row of its own
                ll = ", log-linear" if p.get("law") == "powerlaw" else ""
                qty.setdefault(f"path c ({p['strategy']}{ll})", []).append((p["ci"], p["truth"]))
        for name, pairs in qty.items():
            cov = [c for c in (_covers(ci, t) for ci, t in pairs) if c is not None]
            widths = [ci[1] - ci[0] for ci, t in pairs if ci is not None and t is not None]
            line: dict[str, Any] = {
                "form": form,
                "quantity": name,
                "n": len(cov),
                "coverage": float(np.mean(cov)) if cov else None,
                "median_width": float(np.median(widths)) if widths else None,
            }
            if name == "k":
                v = [(r["resolution_verdict"]["verdict"], r["resolution_verdict"]["truth"]) for r in rs]
                line.update(_verdicts(v, ("slower", "not_slower")))
                fav = [r["k"]["favoured_form"] for r in rs]
                line["favoured_form"] = {f: fav.count(f) for f in sorted(set(map(str, fav)))}
            if name == "dvw":
                v = []
                for r in rs:
                    d = r["dvw"]["truth"]
                    v.append((r["dvw"]["winner"], None if d is None else ("depth" if d < 0 else "width")))
                line.update(_verdicts(v, ("depth", "width")))
            out.append(line)
    return out


def _verdicts(pairs, sides) -> dict[str, Any]:
    """right: the verdict names the true side; wrong: the other side; else undecided."""
    scored = [(v, t) for v, t in pairs if t is not None]
    n = len(scored)
    right = sum(v == t for v, t in scored)
    wrong = sum(v in sides and v != t for v, t in scored)
    return {"verdict_right": right / n if n else None, "verdict_wrong": wrong / n if n else None}


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def f(v, fmt="{:.0%}"):
        return "-" if v is None else fmt.format(v)

    lines = [
        f"{meta['tables']} tables per form, {meta['n_boot']} bootstrap resamples, 90% intervals; "
        f"{meta['seconds']:.0f} s.",
        "",
        "| form | quantity | n | coverage | flag | median width | verdict right | verdict wrong "
        "| form favoured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        c = s["coverage"]
        flag = "" if c is None else ("UNDER" if c < 0.85 else "WIDE" if c > 0.97 else "ok")
        fav = ", ".join(f"{k} {v}" for k, v in s.get("favoured_form", {}).items())
        lines.append(
            f"| {s['form']} | {s['quantity']} | {s['n']} | {f(c)} | {flag} "
            f"| {f(s['median_width'], '{:.3f}')} | {f(s.get('verdict_right'))} "
            f"| {f(s.get('verdict_wrong'))} | {fav} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=int, default=60, help="tables per form")
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--tiny", action="store_true", help="one small table per form, 30 resamples")
    ap.add_argument("--out", type=Path, help="write the per-table numbers and the summary as JSON")
    a = ap.parse_args(argv)
    forms = [f.strip() for f in a.forms.split(",") if f.strip()]
    bad = [f for f in forms if f not in FORMS]
    if bad or not forms:
        ap.error(f"unknown form(s) {bad}; known: {', '.join(FORMS)}")
    if a.tables < 1 or a.n_boot < 10 or a.jobs < 1:
        ap.error("--tables >= 1, --n-boot >= 10 and --jobs >= 1 are required")
    tables, n_boot = (1, 30) if a.tiny else (a.tables, a.n_boot)
    jobs = [(f, i, n_boot, a.tiny) for f in forms for i in range(tables)]
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            rows = list(ex.map(one_table, *zip(*jobs)))
    else:
        rows = [one_table(*j) for j in jobs]
    meta = {"tables": tables, "n_boot": n_boot, "forms": forms, "seconds": time.perf_counter() - t0}
    summary = summarise(rows)
    print(markdown(summary, meta))
    if a.out:
        rep = {"meta": meta, "summary": summary, "tables": rows}
        a.out.write_text(json.dumps(rep, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
