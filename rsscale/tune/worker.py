"""A tuning worker: a submitit job that pulls trials from the shared study until the budget is spent.

Each trial is an ordinary cell run (the train loop, run record, checkpoints, W&B) in
STUDY_DIR/cells/trial-NNNN, on minival only (the val set is never loaded). Per-epoch minival
top-1 goes to the pruner; a pruned trial stops at the epoch boundary and keeps its record.
A heartbeat thread marks the trial alive; trials of dead workers are re-queued by whichever
worker looks next, and resume from the dead worker's checkpoint. On preemption (USR2) the loop
checkpoints, submitit requeues this worker, and the restarted worker resumes the same trial.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import submitit
from optuna.trial import TrialState

from rsscale.config import cell_hash
from rsscale.io import atomic_write_json, read_json
from rsscale.launch.runner import CellRunner, job_id, setup_logging
from rsscale.layout import StudyLayout
from rsscale.tune.space import parse_space, trial_cell
from rsscale.tune.storage import open_storage
from rsscale.tune.study import (
    HEARTBEAT,
    ROOT,
    ask_lock,
    budget_used,
    make_pruner,
    make_sampler,
    metric_key,
    requeue_stale,
)

log = logging.getLogger("rsscale.tune")


def load_study(study_dir: str | os.PathLike, seed: int | None = None) -> tuple[optuna.Study, dict[str, Any]]:
    """The study of a study directory, with its pinned sampler and pruner, and its metadata."""
    meta = read_json(StudyLayout(study_dir).meta)
    tune = meta["tune"]
    storage = open_storage(study_dir, tune.get("storage"), tune.get("journal_lock", "flock"))
    study = optuna.load_study(
        study_name=meta["study_name"],
        storage=storage,
        sampler=make_sampler(tune, int(tune["seed"]) if seed is None else seed),
        pruner=make_pruner(tune),
    )
    return study, meta


class _Heartbeat:
    """Writes time.time() into the running trial's system attrs every `every_s` seconds."""

    def __init__(self, study: optuna.Study, trial_id: int, every_s: float):
        self.study, self.trial_id, self.every_s = study, trial_id, every_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="rsscale-heartbeat")

    def beat(self) -> None:
        self.study._storage.set_trial_system_attr(self.trial_id, HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self.stop_event.wait(self.every_s):
            try:
                self.beat()
            except Exception as e:  # noqa: BLE001 - a finished trial or a storage hiccup: stop beating
                log.warning("heartbeat of trial id %d stopped: %s", self.trial_id, e)
                return

    def __enter__(self):
        try:
            self.beat()  # at once: a resumed trial may have been silent for a requeue's wait
        except Exception as e:  # noqa: BLE001 - declared dead meanwhile: its tell will say so
            log.warning("heartbeat of trial id %d: %s", self.trial_id, e)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)
        return False


class TuneWorker(submitit.helpers.Checkpointable):
    def __init__(self, study_dir: str, index: int, threads: int | None = None):
        self.study_dir = str(study_dir)
        self.index = int(index)
        self.threads = threads
        self.env: dict[str, str] = {}  # set by the backend (rsscale.launch.backends): e.g. the stop signals
        self.current: int | None = None  # the trial number in progress (kept across requeues)

    def __call__(self) -> dict[str, Any]:
        os.environ.update(getattr(self, "env", None) or {})
        study_dir = Path(self.study_dir)
        files = StudyLayout(study_dir)
        if self.threads:
            import torch

            torch.set_num_threads(int(self.threads))
        files.logs.mkdir(parents=True, exist_ok=True)
        setup_logging(files.worker_log(self.index))
        meta = read_json(files.meta)
        tune = meta["tune"]
        first = optuna.load_study(
            study_name=meta["study_name"],
            storage=open_storage(study_dir, tune.get("storage"), tune["journal_lock"]),
        )
        # distinct sampler seeds per worker and per start: no two workers draw the same startup trials
        seed = (int(tune["seed"]) * 1_000_003 + self.index * 7919 + len(first.trials) * 31) % 2**31
        study, meta = load_study(study_dir, seed)
        self._log_start(study_dir)
        _, params, fixed = parse_space(meta["search"])
        ran = 0
        if self.current is not None:  # restarted after preemption or timeout: finish that trial first
            t = study.get_trials(deepcopy=False)[self.current]
            if t.state == TrialState.RUNNING:
                log.info("worker %d resumes trial %d", self.index, t.number)
                trial = optuna.Trial(study, t._trial_id)
                self._run_trial(study, trial, meta, params, fixed)
                ran += 1
            self.current = None
        while True:
            with ask_lock(study_dir):
                requeue_stale(study, float(tune["stale_after_s"]), int(tune["max_requeues"]))
                trials = study.get_trials(deepcopy=False)
                trial = None
                waiting = any(t.state == TrialState.WAITING for t in trials)
                if waiting or budget_used(trials) < int(tune["n_trials"]):
                    trial = study.ask()
                    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time())
                    trial.set_user_attr(
                        "rsscale_worker",
                        {
                            "index": self.index,
                            "host": socket.gethostname(),
                            "pid": os.getpid(),
                            "job_id": job_id(),
                        },
                    )
                    for p in params:  # suggested under the lock: a re-queue always has every parameter
                        p.suggest(trial)
            if trial is None:
                if any(t.state == TrialState.RUNNING for t in trials):
                    time.sleep(float(tune["poll_s"]))  # another worker may still die: wait, then re-queue
                    continue
                break
            self._run_trial(study, trial, meta, params, fixed)
            ran += 1
        log.info("worker %d done: ran %d trial(s); budget %d reached", self.index, ran, int(tune["n_trials"]))
        return {"worker": self.index, "trials": ran}

    def _run_trial(self, study, trial, meta, params, fixed) -> None:
        from rsscale.train.loop import PreemptRequested, Pruned, train

        study_dir = Path(self.study_dir)
        self.current = trial.number
        values = {p.path: p.suggest(trial) for p in params}
        root = int(trial.user_attrs.get(ROOT, trial.number))
        cell = trial_cell(meta["base"], meta["links"], fixed, values)
        cell["logger"]["tags"] = [
            *cell["logger"].get("tags", []),
            f"study:{meta['study_name']}",
            f"trial:{root}",
        ]
        cid = f"trial-{root:04d}"
        files = StudyLayout(study_dir).cell(cid)
        if files.config.exists() and cell_hash(read_json(files.config)) != cell_hash(cell):
            cid = f"trial-{trial.number:04d}"  # a re-queue whose parameters differ: a fresh run
            files = StudyLayout(study_dir).cell(cid)
        cell_dir = files.dir
        cell_dir.mkdir(parents=True, exist_ok=True)
        if not files.config.exists():
            atomic_write_json(files.config, cell)
        trial.set_user_attr("cell_id", cid)
        CellRunner(self.study_dir, cid).log_attempt()
        key = metric_key(cell)
        epochs = int(cell["recipe"]["epochs"])
        pruner_name = meta["tune"]["pruner"]

        def on_epoch_end(epoch: int, entry: dict) -> None:
            value = entry.get(key)
            if value is None:
                return
            trial.report(float(value), epoch)
            if epoch < epochs and trial.should_prune():
                raise Pruned(f"{pruner_name} pruner at epoch {epoch}: {key} {value:.4f}")

        log.info(
            "worker %d: trial %d (%s) %s", self.index, trial.number, cid, json.dumps(values, default=str)
        )
        with _Heartbeat(study, trial._trial_id, float(meta["tune"]["heartbeat_s"])):
            try:
                record = train(
                    cell,
                    cell_dir,
                    cell_id_=cid,
                    group=meta["study_name"],
                    on_epoch_end=on_epoch_end,
                    minival_only=True,
                )
            except (PreemptRequested, SystemExit, KeyboardInterrupt):
                raise  # the trial stays RUNNING; the requeued worker resumes it from the checkpoint
            except Exception as e:  # noqa: BLE001 - one failed trial never stops the study
                log.exception("trial %d failed", trial.number)
                self._tell(study, trial, TrialState.FAIL, None, f"{type(e).__name__}: {e}")
                self.current = None
                return
        status = record["status"]
        if status == "completed":
            self._tell(study, trial, TrialState.COMPLETE, float(record["final"][key]), "completed")
        elif status == "pruned":
            self._tell(study, trial, TrialState.PRUNED, None, record.get("error") or "pruned")
        else:
            self._tell(study, trial, TrialState.FAIL, None, f"{status}: {record.get('error')}")
        self.current = None

    @staticmethod
    def _tell(study, trial, state, value, why: str) -> None:
        try:
            trial.set_user_attr("rsscale_end", why)
            study.tell(trial, value, state=state) if state == TrialState.COMPLETE else study.tell(
                trial, state=state
            )
        except (RuntimeError, ValueError) as e:  # declared dead meanwhile (heartbeat starved): keep going
            log.warning("could not finish trial %d as %s: %s", trial.number, state.name, e)

    def _log_start(self, study_dir: Path) -> None:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "worker": self.index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job_id": job_id(),
            "resume_trial": self.current,
        }
        with open(StudyLayout(study_dir).workers, "a") as f:
            f.write(json.dumps(line) + "\n")

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on USR2/timeout after the loop saved its checkpoint: requeue this worker."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return super().checkpoint(*args, **kwargs)
