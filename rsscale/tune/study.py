"""The shared study: pinned sampler and pruner, the trial budget, and re-queueing of dead trials.

Optuna 5 changed the default sampler, so both are chosen explicitly from `tune.sampler` and
`tune.pruner` and recorded with the study (with library versions and the git commit). The budget
`tune.n_trials` is total across invocations and workers: every trial counts except a FAIL that
was re-queued (a worker that died mid-trial, detected by its stale heartbeat).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "asha", "none")
HEARTBEAT = "rsscale_heartbeat"  # system attr: time.time() of the worker's last sign of life
REQUEUED = "rsscale_requeued"  # system attr on a stale FAIL: the number of its re-queued copy
ROOT = "rsscale_root"  # user attr: the first trial of a chain of re-queues (owns the run directory)
# the objective's name in the study (Optuna's dashboard and plots; else "Objective 0"): see metric_key
OBJECTIVE_NAME = "minival top-1"


def name_objective(study: optuna.Study) -> None:
    """Name the study's objective once (stored with the study, so every reader sees it)."""
    if study.metric_names != [OBJECTIVE_NAME]:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2: not the user's concern
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])


def objective_name(study: optuna.Study) -> str:
    """The objective's name; studies made before it was stored are rsscale studies too."""
    return (study.metric_names or [OBJECTIVE_NAME])[0]


def make_sampler(tune: Mapping[str, Any], seed: int):
    name = tune["sampler"]
    if name == "tpe":
        # constant_liar: parallel workers do not all sample next to the same running trial
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=int(tune["n_startup_trials"]), constant_liar=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"tune.sampler={name!r}: allowed {', '.join(SAMPLERS)}")


def make_pruner(tune: Mapping[str, Any]):
    name = tune["pruner"]
    warm = int(tune["n_warmup_epochs"])
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(tune["n_startup_trials"]), n_warmup_steps=warm
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warm), reduction_factor=3)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warm), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"tune.pruner={name!r}: allowed {', '.join(PRUNERS)}")


def describe(tune: Mapping[str, Any]) -> dict[str, Any]:
    """Sampler and pruner as recorded with the study and in best.json."""
    sampler = make_sampler(tune, int(tune["seed"]))
    pruner = make_pruner(tune)
    return {
        "sampler": {
            "name": tune["sampler"],
            "class": type(sampler).__name__,
            "seed": int(tune["seed"]),
            "n_startup_trials": int(tune["n_startup_trials"]),
        },
        "pruner": {
            "name": tune["pruner"],
            "class": type(pruner).__name__,
            "n_warmup_epochs": int(tune["n_warmup_epochs"]),
        },
    }


@contextlib.contextmanager
def ask_lock(study_dir: str | os.PathLike) -> Iterator[None]:
    """Serialises budget check + ask across workers (flock: a dead holder releases it)."""
    fd = os.open(Path(study_dir) / "ask.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def budget_used(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that count against tune.n_trials: all but stale FAILs that were re-queued."""
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and REQUEUED in t.system_attrs))


def last_sign_of_life(t: optuna.trial.FrozenTrial) -> float:
    hb = t.system_attrs.get(HEARTBEAT)
    if hb is not None:
        return float(hb)
    return t.datetime_start.timestamp() if t.datetime_start else 0.0


def requeue_stale(study: optuna.Study, grace_s: float, max_requeues: int) -> list[int]:
    """RUNNING trials whose heartbeat is older than grace_s -> FAIL, and a copy re-queued.

    The copy keeps the parameters and the root trial's run directory, so it resumes from the
    dead worker's checkpoint. Returns the numbers of the trials declared dead.
    """
    now = time.time()
    trials = study.get_trials(deepcopy=False)
    dead = []
    for t in trials:
        if t.state != TrialState.RUNNING or now - last_sign_of_life(t) <= grace_s:
            continue
        storage = study._storage
        dead.append(t.number)
        root = t.user_attrs.get(ROOT, t.number)
        chain = sum(1 for u in trials if u.user_attrs.get(ROOT, u.number) == root)
        # attrs before the FAIL (a finished trial is read-only); a re-queue already made is not repeated
        storage.set_trial_user_attr(t._trial_id, "rsscale_end", "worker lost (stale heartbeat)")
        if chain <= max_requeues and REQUEUED not in t.system_attrs:
            storage.set_trial_system_attr(t._trial_id, REQUEUED, True)
            study.enqueue_trial(
                dict(t.params), user_attrs={ROOT: root, "rsscale_retry_of": t.number}, skip_if_exists=False
            )
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return dead


def metric_key(cell: Mapping[str, Any]) -> str:
    """The objective: EMA minival top-1 when the recipe uses EMA, else the raw weights'."""
    return "minival_top1_ema" if cell["recipe"].get("ema_decay") else "minival_top1"
