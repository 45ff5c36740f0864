"""Results tables generated from known scaling laws, with their true answers: test data for
the analysis, scripts/bench_analysis.py and the calibration (scripts/calibrate.py).

``make_table`` draws one row per grid cell (the table columns of :mod:`rsscale.analysis.load`)
from a law per epoch budget, with multiplicative log-normal noise, and optionally failed cells
(``fail_frac``: status ``failed``, no top-1) and an unbalanced grid (``drop_frac`` of the cells
missing, ``extra_rep_frac`` of them run with a second seed). Laws:

- ``AdditiveLaw``: ``e = e_inf + A_d (d/d0)^-alpha + A_w (w/w0)^-beta + A_r (r/r0)^-gamma``
  (depth and width complement each other; the analysis fits this form);
- ``ProductLaw``: ``e = e_inf + A (d/d0)^-a_d (w/w0)^-a_w + B (r/r0)^-gamma`` (one compound
  model-size term: depth and width substitute; the analysis fits this form too);
- ``PoweredLaw``: ``e = e_inf + (A_d (d/d0)^-alpha + A_w (w/w0)^-beta + A_r (r/r0)^-gamma)^rho``
  with ``rho != 1``: a form neither fitted law contains (no axis is a separate power-law term),
  so a calibration on it is not circular.

FLOPs follow d * w^2 * r^2 (ResNet-50-like at d=50, w=1, r=224). True answers
(:func:`true_answers`): the compute-optimal resolution exponent k of each law (unbounded by
the grid), the path exponents per log-FLOP where a path is a pure power law plus a constant,
and the depth-vs-width statistic the analysis estimates (mean over the common FLOPs range and
over resolutions of ``log e_depth(C) - log e_width(C)``), computed from the law itself.

``write_sweep`` writes a table as a sweep directory through the modules that own its contract
(``rsscale.layout`` for the paths, ``Manifest`` for manifest.json, ``write_record`` for the
records); cell hashes come from ``rsscale.config.cell_hash``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsscale.config import cell_hash
from rsscale.io import atomic_write_json
from rsscale.launch.manifest import Manifest
from rsscale.layout import SweepLayout
from rsscale.models.resnet_rs import MODEL_CFG_DEFAULTS


@dataclass
class AdditiveLaw:
    e_inf: float = 0.05
    a_depth: float = 0.1
    alpha: float = 0.5
    a_width: float = 0.1
    beta: float = 0.5
    a_res: float = 0.1
    gamma: float = 0.5
    d0: float = 26.0
    w0: float = 0.25
    r0: float = 64.0

    def error(self, d, w, r):
        d, w, r = (np.asarray(v, float) for v in (d, w, r))
        return (
            self.e_inf
            + self.a_depth * (d / self.d0) ** -self.alpha
            + self.a_width * (w / self.w0) ** -self.beta
            + self.a_res * (r / self.r0) ** -self.gamma
        )

    def resolution_exponent(self) -> float:
        return (1 / self.gamma) / (1 / self.alpha + 2 / self.beta + 2 / self.gamma)

    def path_exponents(self) -> dict[str, float] | None:
        """Exponent of each path's error against FLOPs (C ~ d, w^2, r^2 along the paths)."""
        return {"depth": self.alpha, "width": self.beta / 2, "resolution": self.gamma / 2}


@dataclass
class ProductLaw:
    """Depth and width in one compound term: they substitute for each other."""

    e_inf: float = 0.05
    a_model: float = 0.2
    a_d: float = 0.5
    a_w: float = 0.8
    a_res: float = 0.1
    gamma: float = 0.5
    d0: float = 26.0
    w0: float = 0.25
    r0: float = 64.0

    def error(self, d, w, r):
        d, w, r = (np.asarray(v, float) for v in (d, w, r))
        return (
            self.e_inf
            + self.a_model * (d / self.d0) ** -self.a_d * (w / self.w0) ** -self.a_w
            + self.a_res * (r / self.r0) ** -self.gamma
        )

    def resolution_exponent(self) -> float:
        """k = a / (2a + gamma), a = the better of depth's and width's exponents per log-FLOP."""
        a = max(self.a_d, self.a_w / 2)
        return a / (2 * a + self.gamma)

    def path_exponents(self) -> dict[str, float] | None:
        return {"depth": self.a_d, "width": self.a_w / 2, "resolution": self.gamma / 2}


@dataclass
class PoweredLaw:
    """The additive law's sum of terms raised to rho: outside both fitted forms. Its iso-FLOPs
    optimum is the additive law's (a monotone transform of the same sum), so k is known; its
    paths are not pure power laws (no path exponent)."""

    e_inf: float = 0.05
    a_depth: float = 0.1
    alpha: float = 0.5
    a_width: float = 0.1
    beta: float = 0.5
    a_res: float = 0.1
    gamma: float = 0.5
    rho: float = 0.6
    d0: float = 26.0
    w0: float = 0.25
    r0: float = 64.0

    def error(self, d, w, r):
        d, w, r = (np.asarray(v, float) for v in (d, w, r))
        s = (
            self.a_depth * (d / self.d0) ** -self.alpha
            + self.a_width * (w / self.w0) ** -self.beta
            + self.a_res * (r / self.r0) ** -self.gamma
        )
        return self.e_inf + s**self.rho

    def resolution_exponent(self) -> float:
        return (1 / self.gamma) / (1 / self.alpha + 2 / self.beta + 2 / self.gamma)

    def path_exponents(self) -> dict[str, float] | None:
        return None


def flops(d, w, r):
    """Forward FLOPs per image: about 4.1 GFLOPs at depth 50, width 1, 224 px."""
    d, w, r = (np.asarray(v, float) for v in (d, w, r))
    return 4.1e9 * (d / 50) * w**2 * (r / 224) ** 2


def params(d, w):
    d, w = (np.asarray(v, float) for v in (d, w))
    return 25.6e6 * (d / 50) * w**2


def train_step_s(d, w, r, batch: int = 128):
    """A made-up accelerator: 3x forward FLOPs at 40 TFLOP/s, deep-narrow layers less efficient."""
    d, w, r = (np.asarray(v, float) for v in (d, w, r))
    eff = 0.4 * np.clip(w, 0.25, 4) ** 0.3 / (d / 50) ** 0.05
    return 2e-3 + 3 * flops(d, w, r) * batch / (40e12 * eff)


def make_table(
    depths=(26, 50, 101, 200),
    widths=(0.25, 0.5, 1.0, 2.0),
    resolutions=(128, 224),
    epochs=(10, 100),
    laws: dict[float, Any] | Any = None,
    noise: float = 0.02,
    time_noise: float = 0.02,
    seed: int = 0,
    dataset: str = "synthetic",
    replicates: int = 1,
    fail_frac: float = 0.0,
    drop_frac: float = 0.0,
    extra_rep_frac: float = 0.0,
) -> pd.DataFrame:
    for name, v in (("fail_frac", fail_frac), ("drop_frac", drop_frac), ("extra_rep_frac", extra_rep_frac)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {v}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    laws = laws if laws is not None else AdditiveLaw()
    D, W, R, E, S = np.meshgrid(depths, widths, resolutions, epochs, np.arange(replicates), indexing="ij")
    D, W, R, E, S = (a.ravel() for a in (D, W, R, E, S))
    if drop_frac or extra_rep_frac:
        keep = rng.random(D.size) >= drop_frac
        extra = keep & (rng.random(D.size) < extra_rep_frac)
        D, W, R, E = (np.concatenate([a[keep], a[extra]]) for a in (D, W, R, E))
        S = np.concatenate([S[keep], S[extra] + replicates])
    err = np.empty(D.size)
    for e in np.unique(E):
        law = laws[e] if isinstance(laws, dict) else laws
        m = e == E
        err[m] = law.error(D[m], W[m], R[m])
    err = np.clip(err * np.exp(rng.normal(0.0, noise, D.size)), 1e-4, 0.999)
    ts = train_step_s(D, W, R) * np.exp(rng.normal(0.0, time_noise, D.size))
    failed = rng.random(D.size) < fail_frac
    status = np.where(failed, "failed", "completed")
    top1 = np.where(failed, np.nan, 1.0 - err)
    return pd.DataFrame(
        {
            "depth": D.astype(int),
            "width": W.astype(float),
            "resolution": R.astype(int),
            "epochs": E.astype(float),
            "seed": S.astype(int),
            "flops": flops(D, W, R),
            "params": params(D, W),
            "train_step_s": ts,
            "infer_s": ts / 3.0,
            "top1": top1,
            "status": status,
            "dataset": dataset,
        }
    )


def paper_like_laws() -> dict[float, AdditiveLaw]:
    """Width wins at 10 epochs (alpha < beta/2), depth wins at 350 (alpha > beta/2)."""
    return {
        10.0: AdditiveLaw(e_inf=0.08, a_depth=0.1, alpha=0.15, a_width=0.1, beta=0.9, gamma=0.6),
        350.0: AdditiveLaw(e_inf=0.04, a_depth=0.1, alpha=0.8, a_width=0.1, beta=0.5, gamma=0.6),
    }


# ---------------------------------------------------------------------------- true answers


def true_dvw(
    law: Any,
    depths,
    widths,
    resolutions,
    grid_points: int = 50,
    base_depth: float | None = None,
    base_width: float | None = None,
) -> float | None:
    """The analysis's depth-vs-width statistic computed from the law: the mean over resolutions
    of the mean over the common FLOPs range of ``log e_depth(C) - log e_width(C)`` (depth path
    at the base width, width path at the base depth; base = the smallest depth and width unless
    given); negative: depth is better. None without overlap."""
    d0 = float(min(depths)) if base_depth is None else float(base_depth)
    w0 = float(min(widths)) if base_width is None else float(base_width)
    ds = []
    for r in resolutions:
        cd = flops(np.asarray(depths, float), w0, r)
        cw = flops(d0, np.asarray(widths, float), r)
        lo, hi = max(cd.min(), cw.min()), min(cd.max(), cw.max())
        if not hi > lo * 1.01:
            continue
        C = np.geomspace(lo, hi, grid_points)
        unit = flops(1.0, 1.0, r)
        e_d = law.error(C / (unit * w0**2), w0, r)
        e_w = law.error(d0, np.sqrt(C / (unit * d0)), r)
        ds.append(float(np.mean(np.log(e_d) - np.log(e_w))))
    return float(np.mean(ds)) if ds else None


def true_answers(laws: dict[float, Any] | Any, depths, widths, resolutions, epochs) -> dict[str, Any]:
    """What a perfect analysis of a table drawn by ``make_table`` would report, per epoch
    budget and overall (the headline k is the mean over epoch budgets, as in the analysis)."""
    out: dict[str, Any] = {"by_epochs": {}}
    ks = []
    for e in epochs:
        law = laws[e] if isinstance(laws, dict) else laws
        k = float(law.resolution_exponent())
        ks.append(k)
        out["by_epochs"][float(e)] = {
            "resolution_exponent": k,
            "path_exponents": law.path_exponents(),
            "dvw": true_dvw(law, depths, widths, resolutions),
        }
    out["resolution_exponent"] = float(np.mean(ks))
    return out


# ---------------------------------------------------------------------------- sweep dirs


def _cell_config(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {
            **MODEL_CFG_DEFAULTS,
            "name": "resnet_rs",
            "depth": int(row["depth"]),
            "width": float(row["width"]),
        },
        "data": {
            "name": row.get("dataset", "fashion_mnist"),
            "root": None,
            "train_res": int(row["resolution"]),
            "eval_res": int(row["resolution"]),
            "minival_fraction": 0.02,
            "train_subset": None,
            "download": False,
            "num_workers": "auto",
            "randaugment_magnitude": None,
        },
        "recipe": {
            "name": "fast",
            "epochs": int(row["epochs"]) if float(row["epochs"]).is_integer() else float(row["epochs"]),
            "batch_size": 256,
            "lr_base": 0.1,
            "lr_schedule": "cosine",
            "warmup_epochs": 1,
            "weight_decay": 4.0e-5,
            "momentum": 0.9,
            "label_smoothing": 0.0,
            "ema_decay": None,
            "grad_accum_steps": 1,
        },
        "runtime": {
            "seed": int(row.get("seed", 0)),
            "device": "auto",
            "precision": "bf16",
            "channels_last": True,
            "compile": "auto",
        },
        "logger": {"mode": "disabled", "project": "rsscale", "group": None, "tags": []},
    }


def make_record(
    row: dict[str, Any], status: str = "completed", ts: str = "2025-01-01T00:00:00+00:00"
) -> dict[str, Any]:
    cfg = _cell_config(row)
    h = cell_hash(cfg)
    axes = (
        f"d{int(row['depth'])}-w{float(row['width']):g}-r{int(row['resolution'])}-e{cfg['recipe']['epochs']}"
    )
    cid = f"{axes}-{h[:8]}"
    top1 = float(row["top1"])
    n_ep = max(1, int(math.ceil(float(row["epochs"]))))
    history = [
        {
            "epoch": i + 1,
            "step": (i + 1) * 234,
            "train_loss": 2.3 * (1 - top1) ** ((i + 1) / n_ep),
            "lr": 0.1,
            "images_per_s": 800.0,
            "epoch_s": 30.0,
            "minival_top1": top1 - 0.01 * (n_ep - i - 1) / n_ep,
            "minival_top5": 0.99,
            "minival_top1_ema": None,
            "minival_top5_ema": None,
        }
        for i in range(n_ep)
    ]
    done = status == "completed"
    final = (
        {
            "top1": top1,
            "top5": min(1.0, top1 + 0.08),
            "val_top1": top1,
            "val_top5": min(1.0, top1 + 0.08),
            "val_top1_ema": None,
            "val_top5_ema": None,
            "minival_top1": top1 - 0.002,
            "minival_top5": 0.99,
            "best_minival_top1": top1,
        }
        if done
        else {}
    )
    err_class = {
        "completed": None,
        "failed": "oom",
        "diverged": "diverged",
        "preempted": "preempted",
        "running": None,
    }
    return {
        "schema_version": 1,
        "cell_hash": h,
        "cell_id": cid,
        "config": cfg,
        "status": status,
        "error_class": err_class.get(status),
        "error": None if status in ("completed", "running") else f"synthetic {status}",
        "history": history if done else history[:1],
        "final": final,
        "cost": {
            "params": int(row["params"]),
            "flops_per_image": int(row["flops"]),
            "train_step_s": float(row["train_step_s"]),
            "infer_s": float(row["infer_s"]),
            "latency_batch": 128,
            "images_per_s": 128 / float(row["train_step_s"]),
            "peak_mem_bytes": 1 << 30,
            "train_time_s": float(row["train_step_s"]) * 234 * n_ep,
        },
        "provenance": {
            "git_commit": "0" * 40,
            "versions": {"torch": "2.14.1", "python": "3.11.7"},
            "hardware": {"device": "cpu", "name": "synthetic"},
            "hostname": "synthetic",
            "slurm_job_id": None,
            "wandb_run_id": None,
            "python": "3.11.7",
        },
        "attempts": 1,
        "created": ts,
        "updated": ts,
        "finished": ts if done else None,
    }


def write_sweep(
    path: str | Path,
    table: pd.DataFrame,
    statuses: dict[int, str] | None = None,
    grid: str = "synthetic",
    pending: int = 0,
) -> Path:
    """Write ``table`` as a contract-exact sweep dir; ``statuses`` maps row index -> status.

    ``pending`` extra rows (the last ones of the table) appear in the manifest only, without a
    record, as cells that have not run yet.
    """
    path = Path(path)
    layout = SweepLayout(path)
    layout.cells.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(path)
    manifest.data["grid"] = grid
    rows = table.to_dict("records")
    for i, row in enumerate(rows):
        status = (statuses or {}).get(i, "completed")
        rec = make_record(row, status=status)
        cid = rec["cell_id"]
        axes = {
            "model.depth": int(row["depth"]),
            "model.width": float(row["width"]),
            "data.train_res": int(row["resolution"]),
            "recipe.epochs": rec["config"]["recipe"]["epochs"],
        }
        entry = manifest.add_cell(cid, rec["cell_hash"], axes, None, "small")
        if i >= len(rows) - pending:
            entry["status"] = "pending"
            continue
        manifest.add_submission(cid, "1", "slurm", "small")
        entry["status"] = status
        files = layout.cell(cid)
        # written as is (not write_record, which stamps `updated` with the clock): byte-reproducible
        atomic_write_json(files.record, rec, fsync=False)
        with open(files.attempts, "w") as f:
            attempt = {"job_id": "1", "host": "synthetic", "pid": 0, "time": rec["created"]}
            f.write(json.dumps({**attempt, "slurm_restart_count": 0, "resume": False}) + "\n")
    manifest.save()
    return path
