"""`python -m rsscale.status STUDY_DIR`: one row per trial, like the cells of a sweep.

State comes from the study (a RUNNING trial whose heartbeat is older than `tune.stale_after_s`
shows as `stale`: its worker is gone and the next worker re-queues it), epochs, minival and
attempts from the trial's run record and attempts.jsonl.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from rsscale.launch.cell_states import cell_text, count_line, text_table
from rsscale.launch.manifest import count_attempts
from rsscale.layout import StudyLayout
from rsscale.train.record_file import load_record
from rsscale.tune.study import REQUEUED, ROOT, budget_used, last_sign_of_life


def trial_rows(study_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from rsscale.tune.worker import load_study

    study_dir = Path(study_dir)
    study, meta = load_study(study_dir)
    trials = study.get_trials(deepcopy=False)
    grace = float(meta["tune"]["stale_after_s"])
    rows = []
    for t in trials:
        state = t.state.name.lower()
        if t.state == TrialState.RUNNING and time.time() - last_sign_of_life(t) > grace:
            state = "stale"
        if t.state == TrialState.FAIL and REQUEUED in t.system_attrs:
            state = "requeued"
        cid = t.user_attrs.get("cell_id")
        files = StudyLayout(study_dir).cell(cid) if cid else None
        rec = load_record(files.dir) if files else None
        history = (rec or {}).get("history") or []
        epochs = ((rec or {}).get("config") or {}).get("recipe", {}).get("epochs")
        minival = t.value if t.value is not None else (max(t.intermediate_values.values(), default=None))
        rows.append(
            {
                "trial": t.number,
                "state": state,
                "cell_id": cid,
                "root": t.user_attrs.get(ROOT, t.number),
                "epochs": f"{len(history)}/{epochs}" if epochs else "-",
                "minival_top1": minival,
                "pruned": t.state == TrialState.PRUNED,
                "attempts": count_attempts(files.attempts) if files else 0,
                "params": t.params,
            }
        )
    best = None
    if any(t.state == TrialState.COMPLETE for t in trials):
        best = {"trial": study.best_trial.number, "minival_top1": study.best_value}
    head = {
        "study_name": study.study_name,
        "n_trials": int(meta["tune"]["n_trials"]),
        "used": budget_used(trials),
        "best": best,
    }
    return head, rows


def format_trials(head: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    cols = [
        ("trial", "trial"),
        ("state", "state"),
        ("cell_id", "cell"),
        ("epochs", "epochs"),
        ("minival_top1", "minival"),
        ("pruned", "pruned"),
        ("attempts", "attempts"),
        ("params", "params"),
    ]

    def fmt(v):
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, dict):
            return " ".join(
                f"{k.split('.')[-1]}={x:.4g}" if isinstance(x, float) else f"{k.split('.')[-1]}={x}"
                for k, x in v.items()
            )
        return cell_text(v)

    lines = text_table(rows, cols, fmt)
    lines.append("")
    summary = count_line(Counter(r["state"] for r in rows))
    lines.append(
        f"study {head['study_name']}: {head['used']}/{head['n_trials']} trials of the budget; {summary}"
    )
    if head["best"]:
        lines.append(f"best: trial {head['best']['trial']} minival top1 {head['best']['minival_top1']:.4f}")
    return "\n".join(lines)
