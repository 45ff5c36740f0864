"""Stage timers of the analysis on scripts/bench_analysis.py's 10,000-cell table.

    PYTHONPATH=$TREE .venv/bin/python scripts/bench_analysis_stages.py [n_boot]

Wraps wall-clock timers around the stages of recommend.analyze_dataset (held-out folds, chosen-law
fits with bootstrap, estimator comparison, depth vs width, resolution and its joint law) to see
where time goes. Indented stages are parts of the one above them.
"""

import pathlib
import sys
import tempfile
import time
from collections import Counter

import numpy as np

from rsscale.analysis import fit as F
from rsscale.analysis import joint as J
from rsscale.analysis import selection as S
from rsscale.analysis import study as ST
from rsscale.analysis import synthetic
from rsscale.analysis.load import load_results
from rsscale.analysis.questions import depth_width as DW
from rsscale.analysis.questions import resolution as RQ
from rsscale.analysis.questions import resolution_estimate as RE
from rsscale.analysis.recommend import Settings, analyze_dataset

k = 10
depths = tuple(int(v) for v in np.geomspace(26, 400, k).round())
widths = tuple(float(v) for v in np.geomspace(0.25, 3.0, k).round(3))
res = tuple(int(v) for v in np.geomspace(64, 512, k).round())
epochs = tuple(float(v) for v in np.geomspace(5, 350, k).round())
laws = {
    e: synthetic.AdditiveLaw(alpha=0.15 + 0.6 * i / max(k - 1, 1), beta=0.6, gamma=0.5, r0=32)
    for i, e in enumerate(epochs)
}
table = synthetic.make_table(depths, widths, res, epochs, laws=laws, seed=0)
T = {}
ORDER: list[str] = []


def wrap(mod, name, label):
    f = getattr(mod, name)

    def g(*a, **kw):
        t = time.perf_counter()
        r = f(*a, **kw)
        T[label] = T.get(label, 0) + time.perf_counter() - t
        return r

    setattr(mod, name, g)
    ORDER.append(label)


# each name is wrapped in the module that looks it up (a `from x import f` copies the name)
wrap(ST, "fit_selected", "fit_selected (held-out + chosen)")
wrap(S, "heldout", "  held-out folds")
wrap(S, "fit_curves", "  fit_curves (held-out + chosen)")
wrap(F, "_polish", "  path scipy polish")
wrap(ST, "compare_estimators", "compare_estimators")
wrap(DW, "depth_vs_width", "depth_vs_width")
wrap(RQ, "resolution_recommendation", "resolution")
wrap(RE, "fit_joint", "  joint law (both forms)")
wrap(J, "bootstrap_form", "    joint bootstrap")
wrap(J, "_polish", "    joint scipy polish")
with tempfile.TemporaryDirectory() as tmp:
    p = pathlib.Path(tmp) / "c.parquet"
    table.to_parquet(p)
    df = load_results(p)
    t = time.perf_counter()
    an = analyze_dataset(
        df, Settings(n_boot=int(sys.argv[1]) if len(sys.argv) > 1 else 1000, seed=0), "synthetic"
    )
    tot = time.perf_counter() - t
for k_ in ORDER:
    print(f"{k_:35s} {T.get(k_, 0.0):7.2f}")
print(f"{'analyze_dataset':35s} {tot:7.2f}")

print(Counter(p.fit.law for p in an.paths))
print(
    "k",
    {kk: v for kk, v in an.resolution.items() if not isinstance(v, (dict, list))}
    if isinstance(an.resolution, dict)
    else "",
)
