"""Orchestration benchmark: the sweep driver's own cost, on the real SLURM cluster and locally.

  (a) submit a 10,000-cell grid (5 depths x 4 widths x 500 seeds, synthetic data) in detach mode to
      SLURM with cells that exit at once (`cluster.setup=['exit 0']`): expansion + validation time
      (a dry run of the same command, and in-process `expand` / `resource_class`), submission time,
      number of arrays;
  (b) one `python -m rsscale.status DIR` over it, and the in-process `cell_rows` call;
  (c) (run first) the local launcher's per-cell overhead: driver start to the first training step of the
      default embedded cell, and after the last step to the driver's exit, as a fraction of that
      cell's run time (from 1-step and N-step runs of the same cell).
Then it cancels the benchmark's jobs (by id, nobody else's) and removes its files. Prints figures,
asserts nothing.

Usage: .venv/bin/python scripts/bench_sweep.py [--seeds 500] [--steps 60] [--skip-slurm] [--skip-local]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from rsscale.layout import RECORD_NAME, SweepLayout  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
QUIET = ["logger.mode=disabled", "sweep.analyze=false"]


def run(args: list[str], timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(args)}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return dt, proc


def write_grid(root: Path, seeds: int) -> str:
    (root / "grid").mkdir(parents=True, exist_ok=True)
    text = (
        "name: bench10k\n"
        "axes:\n"
        "  model.depth: [26, 50, 101, 152, 200]\n"
        "  model.width: [0.25, 0.5, 0.75, 1.0]\n"
        f"  runtime.seed: [{', '.join(str(i) for i in range(seeds))}]\n"
        "fixed:\n"
        "  recipe.epochs: 1\n"
    )
    (root / "grid" / "bench10k.yaml").write_text(text)
    return "bench10k"


# ----------------------------------------------------------------------------------------- (a) (b)
def bench_slurm(tmp: Path, seeds: int, profile: bool) -> None:
    from rsscale.config import compose
    from rsscale.launch.cell_states import cell_rows
    from rsscale.launch.grid import expand
    from rsscale.launch.manifest import Manifest
    from rsscale.launch.resources import resource_class
    from rsscale.launch.slurm import partition_cpus

    grid = write_grid(tmp, seeds)
    sweep_dir = tmp / "sw"
    common = [
        f"+grid={grid}",
        f"hydra.searchpath=[file://{tmp}]",
        "data=synthetic",
        *QUIET,
        "cluster=slurm",
        "cluster.partition=debug",
        "cluster.setup=['exit 0']",
        "cluster.array_parallelism=1000",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    n_cells = 20 * seeds
    print(f"== (a) submitting a {n_cells}-cell grid to SLURM (detach, cells exit at once)")

    # in-process breakdown: compose, expand + validate, resource classes
    t0 = time.perf_counter()
    cfg = compose([o for o in common if not o.startswith("hydra.sweep")])
    t1 = time.perf_counter()
    _, cells = expand(cfg)
    t2 = time.perf_counter()
    from omegaconf import OmegaConf

    cluster = OmegaConf.to_container(cfg.cluster, resolve=True)
    cluster["cpus_per_node"] = partition_cpus("debug")
    classes = {resource_class(c.config, cluster).key for c in cells}
    t3 = time.perf_counter()
    print(
        f"  in-process: compose {t1 - t0:.2f}s, expand+validate {len(cells)} cells {t2 - t1:.2f}s, "
        f"resource classes {t3 - t2:.2f}s ({len(classes)} class(es))"
    )

    dry_s, _ = run([PY, "-m", "rsscale.sweep", *common, "sweep.dry_run=true"])
    print(f"  dry run (process start, compose, expand, validate, plan; nothing written): {dry_s:.2f}s")
    shutil.rmtree(sweep_dir, ignore_errors=True)

    args = [PY, "-m", "rsscale.sweep", *common, "sweep.detach=true"]
    if profile:
        prof = tmp / "submit.prof"
        args = [PY, "-m", "cProfile", "-o", str(prof), "-m", "rsscale.sweep", *args[3:]]
    sub_s, proc = run(args)
    out = proc.stdout + proc.stderr
    arrays = re.findall(r"submitted (\d+) cells as array (\d+)", out)
    n_sub = sum(int(n) for n, _ in arrays)
    print(
        f"  detached submission command: {sub_s:.2f}s in all -> submission itself ~{sub_s - dry_s:.2f}s "
        f"({(sub_s - dry_s) / max(1, n_sub) * 1000:.2f} ms/cell)"
    )
    print(f"  {n_sub} cells in {len(arrays)} arrays: {', '.join(a for _, a in arrays)}")
    man = json.loads(SweepLayout(sweep_dir).manifest.read_text())
    n_ids = sum(len(c["submissions"]) for c in man["cells"].values())
    size_mb = SweepLayout(sweep_dir).manifest.stat().st_size / 1e6
    print(f"  manifest: {len(man['cells'])} cells, {n_ids} job ids, {size_mb:.1f} MB")
    if profile:
        print("  profile of the submission command (rsscale/submitit/pickle, by cumulative time):")
        st = pstats.Stats(str(prof))
        st.sort_stats("cumulative").print_stats(r"rsscale/|submitit/|pickle|json|subprocess", 25)

    try:
        print("== (b) status over the sweep")
        st_s, proc = run([PY, "-m", "rsscale.status", str(sweep_dir)])
        tail = proc.stdout.strip().splitlines()[-1]
        print(f"  python -m rsscale.status DIR: {st_s:.2f}s ({tail})")
        m = Manifest.load(sweep_dir)
        t0 = time.perf_counter()
        rows = cell_rows(m)
        t1 = time.perf_counter()
        if profile:
            cProfile.runctx(
                "cell_rows(m)", globals(), {"cell_rows": cell_rows, "m": m}, str(tmp / "rows.prof")
            )
            pstats.Stats(str(tmp / "rows.prof")).sort_stats("cumulative").print_stats(8)
        counts = dict(Counter(r["status"] for r in rows))
        print(f"  in-process cell_rows: {t1 - t0:.2f}s for {len(rows)} rows {counts}")
    finally:
        ids = sorted({a for _, a in arrays})
        if ids:
            subprocess.run(["scancel", *ids], check=False, capture_output=True)
            print(f"  cancelled arrays {' '.join(ids)}")


# ----------------------------------------------------------------------------------------- (c)
def _timed_local_cell(tmp: Path, name: str, steps: int | None) -> dict[str, float]:
    """Run the default embedded cell through the local launcher; poll for its first and last steps."""
    d = tmp / name
    extra = [f"runtime.max_steps={steps}"] if steps else []
    args = [PY, "-m", "rsscale.sweep", *QUIET, f"hydra.sweep.dir={d}", "runtime.progress=log",
            "runtime.log_every_steps=1", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    marks: dict[str, float] = {}
    first = re.compile(r"epoch 1/\d+ step 1 ")
    last_step = None
    while proc.poll() is None:
        cells = SweepLayout(d).cells
        logs = list(cells.glob("*/train.log")) if cells.exists() else []
        if "attempt" not in marks and cells.exists() and list(cells.glob("*/attempts.jsonl")):
            marks["attempt"] = time.perf_counter() - t0
        if logs:
            text = logs[0].read_text()
            if "first_step" not in marks and first.search(text):
                marks["first_step"] = time.perf_counter() - t0
            steps_seen = re.findall(r" step (\d+) ", text)
            if steps_seen and steps_seen[-1] != last_step:
                last_step = steps_seen[-1]
                marks["last_step"] = time.perf_counter() - t0
        time.sleep(0.02)
    marks["end"] = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"local cell failed:\n{out[-3000:]}")
    rec = json.loads(next(SweepLayout(d).cells.glob(f"*/{RECORD_NAME}")).read_text())
    marks["steps"] = float(rec["history"][-1]["step"] if rec["history"] else 0)
    marks["train_time_s"] = float(rec["cost"].get("train_time_s") or 0.0)
    return marks


def bench_local(tmp: Path, steps: int) -> None:
    from rsscale.config import compose
    from rsscale.launch.grid import expand
    from rsscale.launch.resources import dataset_shape

    _, (cell,) = expand(compose([]))
    c = cell.config
    print(
        f"== (c) local launcher overhead, default embedded cell {cell.cell_id} "
        f"({c['model']['depth']}x{c['model']['width']} on {c['data']['name']} @{c['data']['train_res']}px, "
        f"{c['recipe']['epochs']} epochs, batch {c['recipe']['batch_size']})"
    )
    one = _timed_local_cell(tmp, "one", 1)
    many = _timed_local_cell(tmp, "many", steps)
    per_step = (many["last_step"] - many["first_step"]) / max(1, steps - 1)
    n_train, _, _ = dataset_shape(c["data"])
    total_steps = n_train // int(c["recipe"]["batch_size"]) * int(c["recipe"]["epochs"])
    start = one["first_step"]  # driver start -> first step (includes the driver and runner start-up)
    tail = one["end"] - one["last_step"]  # last step -> driver exit (final evals, latency, record)
    est = start + total_steps * per_step + tail
    print(f"  driver start -> runner start (attempts.jsonl): {one.get('attempt', float('nan')):.2f}s")
    print(f"  driver start -> first training step: {start:.2f}s")
    print(f"  last step -> driver exit (final val/minival eval, latency, record, summary): {tail:.2f}s")
    print(f"  per step: {per_step * 1000:.1f} ms ({steps}-step run); full cell: {total_steps} steps")
    print(
        f"  estimated full default cell: {est:.0f}s -> start-up overhead {start / est:.1%}, "
        f"start-up + tail {(start + tail) / est:.1%}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=500, help="seeds per (depth, width): 500 -> 10,000 cells")
    p.add_argument("--steps", type=int, default=60, help="steps of the local per-step timing run")
    p.add_argument("--profile", action="store_true", help="cProfile the submission and cell_rows")
    p.add_argument("--skip-slurm", action="store_true")
    p.add_argument("--skip-local", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rsscale-bench-"))
    try:
        # local first: 10,000 array tasks starting and being cancelled load the machine for minutes
        if not args.skip_local:
            bench_local(tmp, args.steps)
        if not args.skip_slurm:
            bench_slurm(tmp, args.seeds, args.profile)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
