"""`python -m rsscale.tune +search=NAME [overrides]`: tune one cell's recipe on minival with Optuna.

Validates the search space against the cell config, creates (or resumes) the study in the
deterministic study directory, starts `tune.workers` workers (local submitit jobs or one SLURM
array) that pull trials until `tune.n_trials` is spent, then evaluates val for the best trial
only and writes best.json, the report and the recipe preset.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import rsscale.cli  # noqa: F401 - registers the resolver that --help lists the user's groups with
from rsscale.config import CELL_GROUPS, CONF_DIR, cell_hash
from rsscale.io import atomic_write_json, read_json, set_aside
from rsscale.launch.backends import BackendError, WorkerJob, backend_for
from rsscale.launch.grid import config_links
from rsscale.launch.live import MODES
from rsscale.launch.multirun import dir_suffix
from rsscale.layout import JOURNAL_NAME, StudyLayout
from rsscale.train.record_file import provenance
from rsscale.tune.live import TuneView
from rsscale.tune.results import finalize
from rsscale.tune.space import SearchSpaceError, parse_space, trial_cell, validate_space
from rsscale.tune.storage import open_storage
from rsscale.tune.study import PRUNERS, SAMPLERS, budget_used, describe, name_objective
from rsscale.tune.trial_states import format_trials, trial_rows
from rsscale.tune.worker import TuneWorker, load_study

# The study-dir name: the sweeps' naming function on Hydra's override record (conf/tune.yaml).
OmegaConf.register_new_resolver("rsscale_dir_suffix", dir_suffix, replace=True)


class TuneError(ValueError):
    pass


def check_settings(tune: dict[str, Any], data: dict[str, Any]) -> None:
    """The tuner's own fields; every error names the field and what is allowed."""
    for key, lo in (
        ("n_trials", 1),
        ("workers", 1),
        ("max_requeues", 0),
        ("n_warmup_epochs", 0),
        ("n_startup_trials", 0),
    ):
        v = tune.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise TuneError(f"tune.{key} must be an integer >= {lo}, got {v!r}")
    for key in ("heartbeat_s", "stale_after_s", "poll_s", "progress_every_s"):
        v = tune.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise TuneError(f"tune.{key} must be a number > 0, got {v!r}")
    if tune["stale_after_s"] <= 2 * tune["heartbeat_s"]:
        raise TuneError(
            f"tune.stale_after_s={tune['stale_after_s']} must exceed "
            f"2 x tune.heartbeat_s={tune['heartbeat_s']}"
        )
    if tune["sampler"] not in SAMPLERS:
        raise TuneError(f"tune.sampler={tune['sampler']!r}: allowed {', '.join(SAMPLERS)}")
    if tune["pruner"] not in PRUNERS:
        raise TuneError(f"tune.pruner={tune['pruner']!r}: allowed {', '.join(PRUNERS)}")
    if tune["progress"] not in MODES:
        raise TuneError(f"tune.progress={tune['progress']!r}: allowed {', '.join(MODES)}")
    if not data.get("minival_fraction"):
        raise TuneError(
            f"data.minival_fraction={data.get('minival_fraction')!r}: the objective is minival top-1, "
            "so tuning needs a minival split (e.g. 0.02); val is only for the best trial"
        )


def prepare(cfg: DictConfig, study_dir: Path) -> dict[str, Any]:
    """Validate everything and write STUDY_DIR/study.json; nothing runs before this passes."""
    tune = OmegaConf.to_container(cfg.tune, resolve=True)
    search = OmegaConf.to_container(cfg.search, resolve=True) if cfg.get("search") is not None else None
    name, params, fixed = parse_space(search)
    base_cfg = OmegaConf.masked_copy(cfg, list(CELL_GROUPS))
    links = config_links(base_cfg)
    base = OmegaConf.to_container(base_cfg, resolve=False)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    check_settings(tune, data)
    try:
        centre = validate_space(name, params, fixed, base, links)
    except SearchSpaceError:
        raise
    except ValueError as e:
        raise TuneError(str(e)) from None
    # what a study is: changing any of these needs a new study directory (the budget may change)
    identity = {
        "search": search,
        "base_hash": cell_hash(centre),
        "storage": tune["storage"],
        **{k: tune[k] for k in ("sampler", "pruner", "seed", "n_startup_trials", "n_warmup_epochs")},
    }
    meta = {
        "study_name": tune["study_name"] or study_dir.name,
        "identity": hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ],
        "search": search,
        "base": base,
        "links": links,
        "tune": tune,
        "cluster": OmegaConf.to_container(cfg.cluster, resolve=True),
    }
    path = StudyLayout(study_dir).meta
    old = _read_meta(path, study_dir, meta) if path.exists() else None
    if old is not None:
        if old["identity"] != meta["identity"]:
            raise TuneError(
                f"{study_dir} holds study {old['study_name']!r} of another search space, base config, "
                "sampler or pruner; "
                "use another hydra.sweep.dir (or the same command as before to resume it)"
            )
        meta["study_name"] = old["study_name"]
    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, meta)
    return meta


def _read_meta(path: Path, study_dir: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The study.json of an earlier run; a garbage one is named, set aside and rebuilt from this
    command and the journal (the study's name: the one study there)."""
    try:
        old = read_json(path)
        if isinstance(old, dict) and isinstance(old.get("identity"), str) and old.get("study_name"):
            return old
        reason = "not a study description"
    except (OSError, ValueError) as e:
        reason = f"{type(e).__name__}: {str(e)[:120]}"
    aside = set_aside(path)
    tune = meta["tune"]
    try:
        names = optuna.get_all_study_names(
            open_storage(study_dir, tune.get("storage"), tune.get("journal_lock", "flock"))
        )
    except Exception:  # noqa: BLE001 - no readable journal: this command's name
        names = []
    if len(names) == 1:
        meta["study_name"] = names[0]
    print(
        f"rsscale: warning: {path} is unreadable ({reason}); set aside as {aside.name} and rebuilt from this "
        f"command (study {meta['study_name']!r} in the journal)",
        file=sys.stderr,
        flush=True,
    )
    return None


def create(meta: dict[str, Any], study_dir: Path) -> optuna.Study:
    tune = meta["tune"]
    storage = open_storage(study_dir, tune["storage"], tune["journal_lock"])
    study = optuna.create_study(
        study_name=meta["study_name"], storage=storage, direction="maximize", load_if_exists=True
    )
    name_objective(study)
    if "rsscale" not in study.user_attrs:  # recorded once, with the study
        prov = provenance()
        study.set_user_attr(
            "rsscale",
            {
                **describe(tune),
                "search": meta["search"]["name"],
                "versions": prov.get("versions"),
                "git_commit": prov.get("git_commit"),
                "optuna": optuna.__version__,
            },
        )
    return study


def launch(meta: dict[str, Any], study_dir: Path, n_workers: int) -> list[WorkerJob]:
    """Start the workers on the study's backend, each sized for its share of the trials."""
    tune = meta["tune"]
    _, params, fixed = parse_space(meta["search"])
    trial = trial_cell(meta["base"], meta["links"], fixed, {})
    try:
        backend = backend_for(meta["cluster"])
    except BackendError as e:
        raise TuneError(str(e)) from None
    workers = [TuneWorker(str(study_dir), i) for i in range(n_workers)]
    per_worker = math.ceil(int(tune["n_trials"]) / n_workers)  # a worker's share; timeouts requeue it
    return backend.submit_workers(study_dir, workers, trial, per_worker)


def run_tune(cfg: DictConfig) -> int:
    study_dir = Path(HydraConfig.get().sweep.dir).resolve()
    meta = prepare(cfg, study_dir)
    study = create(meta, study_dir)
    tune = meta["tune"]
    trials = study.get_trials(deepcopy=False)
    used, n = budget_used(trials), int(tune["n_trials"])
    busy = sum(
        1 for t in trials if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    )
    print(
        f"rsscale: study {meta['study_name']} in {study_dir} ({JOURNAL_NAME})\n"
        f"  {used}/{n} trials of the budget used, {busy} running or queued; "
        f"sampler {tune['sampler']}, pruner {tune['pruner']}",
        flush=True,
    )
    if used > n:
        print(
            f"rsscale: tune.n_trials={n} is below the {used} trials already run; all {used} stay in the "
            "study and in best.json (a study's trials are never dropped)",
            flush=True,
        )
    if used < n or busy:
        n_workers = max(1, min(int(tune["workers"]), n - used + busy))
        jobs = launch(meta, study_dir, n_workers)
        ids = [str(j.job_id) for j in jobs]
        with open(StudyLayout(study_dir).jobs, "a") as f:
            f.write(
                json.dumps(
                    {
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "jobs": ids,
                        "cluster": meta["cluster"]["name"],
                    }
                )
                + "\n"
            )
        print(f"rsscale: {len(jobs)} worker(s): {', '.join(ids)}", flush=True)
        if tune["detach"]:
            print(f"rsscale: detached; follow with: python -m rsscale.status {study_dir}")
            return 0
        _wait(study_dir, jobs, float(tune["poll_s"]), tune)
    study, meta = load_study(study_dir)
    trials = study.get_trials(deepcopy=False)

    print(format_trials(*trial_rows(study_dir)))
    if budget_used(trials) < n or any(t.state == optuna.trial.TrialState.RUNNING for t in trials):
        print("rsscale: the budget is not spent (workers lost?); re-run the same command to resume")
        return 1
    best = finalize(study, meta, study_dir)
    if best is None:
        print("rsscale: no trial completed; see the trials' records in cells/*/record.json")
        return 1
    print(
        f"\nrsscale: best trial {best['trial']}: minival top1 {best['minival_top1']:.4f}, "
        f"val top1 {best['val_top1']:.4f}  ({json.dumps(best['params'], default=str)})"
    )
    files = StudyLayout(study_dir)
    print(f"rsscale: {files.best}; report in {files.report}")
    print(f"rsscale: use it: python -m rsscale.sweep +grid=NAME {best['use_with']}")
    return 0


def _wait(study_dir: Path, jobs: list, poll_s: float, tune) -> None:
    view = TuneView(study_dir, mode=str(tune["progress"]), every_s=float(tune["progress_every_s"]))
    with view:
        _wait_jobs(view, jobs, poll_s)


def _wait_jobs(view: TuneView, jobs: list, poll_s: float) -> None:
    while True:
        try:
            view.update()
        except Exception as e:  # noqa: BLE001 - a progress line is not worth a crash
            view.print(f"rsscale: {time.strftime('%H:%M:%S')} (study unreadable: {e})")
        if all(j.done() for j in jobs):
            for j in jobs:
                try:
                    j.result()
                except Exception as e:  # noqa: BLE001 - one lost worker never stops the study
                    msg = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
                    view.print(f"rsscale: worker job {j.job_id} ended without finishing: {msg}")
            return
        time.sleep(min(poll_s, view.every_s))


@hydra.main(config_path=str(CONF_DIR), config_name="tune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        code = run_tune(cfg)
    except (TuneError, SearchSpaceError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"rsscale.tune: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
