"""The resolution exponent on tables drawn from each functional form: truth, the joint estimate
(both forms weighed by held-out error), each form alone, and the frontier-slope diagnostic.

    .venv/bin/python scripts/resolution_forms.py [--seeds 3] [--n-boot 400]

Prints the Markdown table of docs/calibration.md, section "Resolution exponent".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsscale.analysis import synthetic as S  # noqa: E402
from rsscale.analysis.load import normalize  # noqa: E402
from rsscale.analysis.recommend import Settings, analyze_dataset  # noqa: E402

GRID = dict(
    depths=(26, 50, 101, 200, 400),
    widths=(0.5, 0.7, 1.0, 1.4, 2.0),
    resolutions=tuple(int(v) for v in np.geomspace(32, 512, 7)),
    epochs=(100.0,),
)
LAWS = {
    "product": S.ProductLaw(a_d=0.25, a_w=0.4, gamma=2.0, a_res=0.3, r0=32),
    "additive": S.AdditiveLaw(e_inf=0.04, alpha=0.8, beta=0.5, gamma=1.5, r0=16),
    "powered (rho 0.6)": S.PoweredLaw(alpha=0.6, beta=0.8, gamma=1.2, rho=0.6, r0=32),
}


def _ci(c) -> str:
    return "-" if not c else f"[{c[0]:.3f}, {c[1]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=400)
    a = ap.parse_args(argv)
    print(
        "| law | seed | true k | k (joint) | 90% CI | form favoured (w product) | additive alone "
        "| product alone | frontier slope |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, law in LAWS.items():
        for seed in range(1, a.seeds + 1):
            t = S.make_table(**GRID, laws=law, seed=seed)
            r = analyze_dataset(normalize(t), Settings(n_boot=a.n_boot)).resolution
            f = r["by_epochs"]["100"]["form"]
            fa, fp = f["forms"]["additive"], f["forms"]["product"]
            print(
                f"| {name} | {seed} | {law.resolution_exponent():.3f} | {r['exponent']:.3f} | {_ci(r['ci'])} "
                f"| {f['favoured']} ({f['weights']['product']:.2f}) "
                f"| {fa['exponent']:.3f} {_ci(fa['ci'])} | {fp['exponent']:.3f} {_ci(fp['ci'])} "
                f"| {r['frontier'].get('exponent') or float('nan'):.3f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
