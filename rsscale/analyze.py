# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this in the entry point's module)
"""``python -m rsscale.analyze PATH... --out DIR``: the analysis report of one or more sweeps.

PATH: a sweep directory, a CSV/parquet results table, or ``wandb:ENTITY/PROJECT[/GROUP]``.
Writes figures, recommendations.md/.json, fits.csv, estimators.csv and summary.csv into DIR
(default: SWEEP_DIR/report when a single sweep directory is given).

Exit status: 0 report written; 1 nothing to fit (no completed cells; summary.csv still written);
2 bad input (missing/empty source, table without the required columns, bad arguments).
The sweep driver calls :func:`main` (or :func:`run`) at the end of a sweep.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rsscale.analysis.laws import LAWS
from rsscale.analysis.load import LoadError, is_sweep_dir, load_results
from rsscale.analysis.report import NoUsableCells, write_report
from rsscale.analysis.study import Settings
from rsscale.cli import parse_args
from rsscale.layout import SweepLayout


def build_parser() -> argparse.ArgumentParser:
    d = Settings()  # the defaults are the settings' own
    p = argparse.ArgumentParser(
        prog="python -m rsscale.analyze",
        description="Scaling-curve fits, depth-vs-width and resolution recommendations, Pareto plots.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="sweep dir, CSV/parquet table, or wandb:ENTITY/PROJECT[/GROUP]",
    )
    p.add_argument("--out", help="output directory (default: SWEEP_DIR/report for a single sweep dir)")
    p.add_argument("--n-boot", type=int, default=d.n_boot, help=f"bootstrap resamples (default {d.n_boot})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ci-level", type=float, default=d.ci_level)
    p.add_argument(
        "--threshold",
        type=float,
        default=d.threshold,
        help=f"confidence needed for a winner/verdict (default {d.threshold:g})",
    )
    p.add_argument(
        "--min-effect",
        type=float,
        default=d.min_effect,
        help=f"smallest log-error difference that counts (default {d.min_effect:g})",
    )
    p.add_argument(
        "--equivalence-margin",
        type=float,
        default=d.equivalence_margin,
        help="depth and width are `equivalent` inside +-this log-error difference "
        f"(default {d.equivalence_margin:g})",
    )
    p.add_argument(
        "--resolution-margin",
        type=float,
        default=d.resolution_margin,
        help="the resolution exponent is `equivalent` to EfficientNet's inside +-this "
        f"(default {d.resolution_margin:g})",
    )
    p.add_argument(
        "--law",
        default=d.law,
        choices=["auto", *LAWS],
        help=f"scaling law of the path fits (default {d.law}; auto: chosen per path by held-out "
        "extrapolation)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=d.num_classes,
        help="class count for the ceiling law's random-guess error 1 - 1/N "
        "(default: the table's num_classes column or the dataset's known count)",
    )
    p.add_argument(
        "--predict-at",
        type=float,
        action="append",
        metavar="FLOPS",
        help="predict each FLOPs path's error at this compute (FLOPs per image), with its interval "
        "(repeatable; predictions.csv and the report)",
    )
    p.add_argument(
        "--base-depth",
        type=float,
        default=d.base_depth,
        help="base depth of the scaling paths (default: smallest)",
    )
    p.add_argument(
        "--base-width",
        type=float,
        default=d.base_width,
        help="base width of the scaling paths (default: smallest)",
    )
    p.add_argument("--dataset", action="append", help="analyse only this dataset (repeatable)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument(
        "--wandb-cache", default=None, help="cache dir for W&B tables (default ~/.cache/rsscale/wandb)"
    )
    p.add_argument(
        "--refresh", action="store_true", help="re-download W&B results instead of using the cache"
    )
    return p


def run(args: argparse.Namespace) -> int:
    out = args.out
    if out is None:
        if len(args.paths) == 1 and is_sweep_dir(args.paths[0]):
            out = str(SweepLayout(args.paths[0]).report)
        else:
            print("analyze: --out DIR is required unless PATH is a single sweep directory", file=sys.stderr)
            return 2
    bad = [c for c in (args.predict_at or []) if not (c > 0 and c < float("inf"))]
    if bad or (args.num_classes is not None and args.num_classes < 2):
        msg = f"--predict-at must be positive FLOPs, got {bad}" if bad else "--num-classes must be >= 2"
        print(f"analyze: {msg}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        df = load_results(args.paths, cache_dir=args.wandb_cache, refresh=args.refresh)
    except LoadError as e:
        print(f"analyze: {e}", file=sys.stderr)
        return 2
    if args.dataset:
        df = df[df["dataset"].isin(args.dataset)].reset_index(drop=True)
        if df.empty:
            print(f"analyze: no cells of dataset(s) {', '.join(args.dataset)}", file=sys.stderr)
            return 2
    for n in df.attrs.get("notes", []):
        print(f"analyze: note: {n}", file=sys.stderr)
    st = Settings(
        n_boot=args.n_boot,
        seed=args.seed,
        ci_level=args.ci_level,
        threshold=args.threshold,
        min_effect=args.min_effect,
        equivalence_margin=args.equivalence_margin,
        resolution_margin=args.resolution_margin,
        law=args.law,
        num_classes=args.num_classes,
        base_depth=args.base_depth,
        base_width=args.base_width,
    )
    try:
        rec = write_report(
            df,
            out,
            st,
            figures=not args.no_figures,
            sources=[str(p) for p in args.paths],
            predict_at=args.predict_at,
        )
    except NoUsableCells as e:
        print(f"analyze: {e}; wrote {Path(out) / 'summary.csv'} only", file=sys.stderr)
        return 1
    print(
        f"analyze: {rec['n_usable']} of {rec['n_cells']} cells analysed in {time.time() - t0:.1f} s; "
        f"report in {out}"
    )
    seen = set(df.attrs.get("notes", []))
    for n in rec.get("notes", []):
        if n not in seen:
            print(f"analyze: note: {n}", file=sys.stderr)
    for q in (rec.get("questions") or {}).values():  # rsscale.analysis.questions, in order
        for line in q.get("summary") or []:
            print(f"  {line}")
    for C in args.predict_at or []:
        rows = [p for p in rec.get("predictions", []) if p["target_flops"] == C and p["error"] is not None]
        for strat in ("depth", "width", "resolution"):
            best = min((p for p in rows if p["strategy"] == strat), key=lambda p: p["error"], default=None)
            if best is None:
                continue
            where = f"{best['epochs']:g} epochs" + (
                f", res {best['resolution']:g}" if best["resolution"] else ""
            )
            print(
                f"  predicted at {C:.3g} FLOPs, best {strat} path ({where}, {best['law']}): error "
                f"{best['error']:.4f} [{best['error_lo']:.4f}, {best['error_hi']:.4f}], "
                f"{best['extrapolation']:.1f}x beyond its data"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
