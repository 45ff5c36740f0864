"""A study's results: val for the best trial only, best.json, the report and the recipe preset.

Trials never see the val set; once the budget is spent, the best trial's final checkpoint is
evaluated on val here and reported beside its minival figure. The best recipe parameters are
exported as STUDY_DIR/recipe/tuned.yaml, a complete recipe preset that any sweep picks with
`hydra.searchpath=[file://STUDY_DIR] recipe=tuned`.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from rsscale.io import atomic_write_bytes, atomic_write_json, read_json
from rsscale.layout import CellLayout, StudyLayout
from rsscale.mpl_env import quiet_matplotlib
from rsscale.train.record_file import load_record, provenance, write_record
from rsscale.tune.study import budget_used, describe, metric_key, objective_name

log = logging.getLogger("rsscale.tune")


def evaluate_val(cell_dir: Path) -> dict[str, float | None]:
    """Val top-1/top-5 of a finished trial's checkpoint (raw and EMA weights), written to its record."""
    import torch

    from rsscale.data import build_data
    from rsscale.models import build_model
    from rsscale.train.checkpoint import load_checkpoint
    from rsscale.train.loop import autocast_dtype, evaluate, pick_device

    record = load_record(cell_dir)
    final = record.get("final") or {}
    if final.get("val_top1") is not None:
        return final
    cell = read_json(CellLayout(cell_dir).config)
    rt = cell["runtime"]
    device = pick_device(rt["device"])
    amp = autocast_dtype(rt["precision"], device)
    data = build_data(
        cell["data"],
        batch_size=int(cell["recipe"]["batch_size"]),
        eval_batch_size=int(rt["eval_batch_size"]),
        device=device,
        seed=int(rt["seed"]),
        channels_last=bool(rt["channels_last"]),
    )
    ckpt = load_checkpoint(cell_dir, map_location=device)
    model = build_model(cell["model"], num_classes=data.num_classes, in_chans=data.in_chans).to(device)
    if rt["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model.load_state_dict(ckpt["model"])
    raw = evaluate(model, data.val, amp, device)
    final.update(val_top1=raw["top1"], val_top5=raw["top5"])
    if ckpt.get("ema") is not None:
        model.load_state_dict(ckpt["ema"]["module"])
        e = evaluate(model, data.val, amp, device)
        final.update(val_top1_ema=e["top1"], val_top5_ema=e["top5"])
    use_ema = ckpt.get("ema") is not None
    final["top1"] = final["val_top1_ema"] if use_ema else final["val_top1"]
    final["top5"] = final["val_top5_ema"] if use_ema else final["val_top5"]
    record["final"] = final
    write_record(cell_dir, record)
    return final


def counts(study: optuna.Study) -> dict[str, int]:
    return dict(Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False)))


def finalize(study: optuna.Study, meta: dict[str, Any], study_dir: Path) -> dict[str, Any] | None:
    """best.json, val of the best trial, the report and the recipe preset (None: no trial completed)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        return None
    best = study.best_trial
    cid = best.user_attrs["cell_id"]
    files = StudyLayout(study_dir)
    cell = read_json(files.cell(cid).config)
    final = evaluate_val(files.cell(cid).dir)
    recipe_path, overrides = export_recipe(study_dir, cell, best.params)
    prov = provenance()
    out = {
        "study_name": study.study_name,
        "trial": best.number,
        "cell_id": cid,
        "params": best.params,
        "objective": metric_key(cell),
        "minival_top1": best.value,
        "val_top1": final.get("top1"),
        "val_top1_raw": final.get("val_top1"),
        "val_top1_ema": final.get("val_top1_ema"),
        **describe(meta["tune"]),
        # the trials actually run: a budget lowered below them changes nothing that was done
        "n_trials": max(int(meta["tune"]["n_trials"]), budget_used(study.get_trials(deepcopy=False))),
        "n_trials_setting": int(meta["tune"]["n_trials"]),
        "trials": counts(study),
        "search": meta["search"],
        "recipe_preset": str(recipe_path),
        "use_with": f"hydra.searchpath=[file://{study_dir}] recipe=tuned"
        + "".join(f" {o}" for o in overrides),
        "versions": prov.get("versions"),
        "git_commit": prov.get("git_commit"),
    }
    atomic_write_json(files.best, out)
    try:
        write_report(study, files.report)
    except Exception as e:  # noqa: BLE001 - a failed plot never loses the study's results
        log.warning("tuning report failed: %s: %s", type(e).__name__, e)
    return out


def export_recipe(study_dir: Path, cell: dict[str, Any], params: dict[str, Any]) -> tuple[Path, list[str]]:
    """STUDY_DIR/recipe/tuned.yaml: the best trial's full recipe; non-recipe parameters as overrides."""
    recipe = dict(cell["recipe"])
    recipe["name"] = "tuned"
    text = (
        f"# Exported by rsscale.tune from study {study_dir.name} (best trial on minival).\n"
        f"# Use: python -m rsscale.sweep +grid=NAME hydra.searchpath=[file://{study_dir}] recipe=tuned\n"
        + yaml.safe_dump(recipe, sort_keys=False)
    )
    path = StudyLayout(study_dir).tuned_recipe
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    overrides = [f"{k}={_fmt_override(v)}" for k, v in params.items() if not k.startswith("recipe.")]
    return path, overrides


def _fmt_override(v: Any) -> str:
    return "null" if v is None else str(v)


def write_report(study: optuna.Study, out: Path) -> None:
    """Optimisation history, parameter importances and the pruning picture, as PNG and SVG."""
    quiet_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out.mkdir(parents=True, exist_ok=True)
    metric = objective_name(study)
    figures = {
        "history": lambda s: ovm.plot_optimization_history(s, target_name=metric),
        "pruning": ovm.plot_intermediate_values,
    }
    n_done = sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)
    if n_done >= 2 and len(study.best_trial.params) >= 1:
        figures["importances"] = lambda s: ovm.plot_param_importances(s, target_name=metric)
    lines = [f"# Study {study.study_name}", ""]
    for name, fn in figures.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = fn(study)
            except (ValueError, RuntimeError) as e:
                lines.append(f"- {name}: not drawn ({e})")
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        if name == "pruning" and hasattr(ax, "set_ylabel"):
            ax.set_ylabel(f"{metric} after each epoch")
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        for ext in ("png", "svg"):
            fig.savefig(out / f"{name}.{ext}", dpi=150)
        plt.close(fig)
        lines.append(f"- {name}: {name}.png, {name}.svg")
    if "importances" in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                imp = optuna.importance.get_param_importances(study)
                lines += ["", "Parameter importances (fANOVA):", ""]
                lines += [f"- {k}: {v:.3f}" for k, v in imp.items()]
            except (ValueError, RuntimeError) as e:
                lines.append(f"importances unavailable: {e}")
    (out / "report.md").write_text("\n".join(lines) + "\n")
