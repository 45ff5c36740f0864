"""`python -m rsscale.sweep [+grid=NAME] [overrides]`: the main job.

Composes conf/ (+ sweeps/NAME.yaml), expands and validates every cell, merges with the manifest
of the (deterministic) sweep directory, skips completed cells, launches the rest through
submitit (local or SLURM arrays), waits (unless detached), prints a summary and runs the analysis.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import rsscale.cli  # noqa: F401 - registers the resolver that --help lists the user's groups with
from rsscale.config import CONF_DIR
from rsscale.io import is_storage_error, read_json
from rsscale.launch.cell_files import changed_fields, sync_config
from rsscale.launch.grid import Cell, GridError, check_grid_file, expand, grid_file
from rsscale.launch.launcher import LocalLauncher, SlurmLauncher
from rsscale.launch.live import SweepView, poll_every
from rsscale.launch.manifest import Manifest
from rsscale.launch.multirun import dir_suffix
from rsscale.launch.resources import ResourceError, resource_class
from rsscale.launch.slurm import with_node_limits
from rsscale.launch.status import cell_rows, format_table, storage_error
from rsscale.launch.supervision import DriverStop
from rsscale.launch.way_out import continue_command
from rsscale.layout import RECORD_NAME, SweepLayout
from rsscale.states import RETRIED, TERMINAL, WAITING

log = logging.getLogger("rsscale.sweep")
# The sweep-dir name: a hash of Hydra's own override record (conf/config.yaml: hydra.sweep.dir).
OmegaConf.register_new_resolver("rsscale_dir_suffix", dir_suffix, replace=True)


class SweepError(RuntimeError):
    pass


def check_local_devices(cells: list[Cell]) -> None:
    """cluster=local runs the cells on this host: a requested GPU must be here, before anything runs."""
    want = [c for c in cells if c.config["runtime"].get("device") == "cuda"]
    if want:
        import torch

        if not torch.cuda.is_available():
            raise SweepError(
                f"cell {want[0].cell_id}: runtime.device=cuda, but this host has no usable CUDA GPU and "
                "cluster=local runs cells here; use runtime.device=auto or cpu, or cluster=slurm"
            )


def plan(cfg: DictConfig, manifest: Manifest, cells: list[Cell]) -> tuple[list[tuple[Cell, Any]], dict]:
    """Which cells to launch: new ones, unfinished ones, and failures the retry policy allows."""
    cluster = OmegaConf.to_container(cfg.cluster, resolve=True)
    retry = OmegaConf.to_container(cfg.sweep.retry, resolve=True)
    cluster = with_node_limits(cluster)  # the partition's CPUs and GPUs per node, from sinfo
    if cluster.get("name") == "local" or cluster.get("kind") == "local":
        check_local_devices(cells)
    classes = {}
    for c in cells:  # every cell's resources are checked before anything is submitted
        try:
            classes[c.cell_id] = resource_class(c.config, cluster)
        except ResourceError as e:
            raise SweepError(f"cell {c.cell_id}: {e}") from None
    for c in cells:  # garbage in a cell's attempts log is set aside before anything reads it
        manifest.heal_attempts(c.cell_id)
    known = [
        c.cell_id for c in cells if c.cell_id in manifest.cells and manifest.cells[c.cell_id]["submissions"]
    ]
    rows = {r["cell_id"]: r for r in cell_rows(manifest, known)} if known else {}
    todo: list[tuple[Cell, Any]] = []
    counts: dict[str, Any] = Counter()  # new, skip_completed, resume, retry, running, exhausted
    counts["waiting"] = []  # cells queued or running from an earlier launch
    counts["out_of_retries"] = []  # (cell, error class, failures of that class, retries allowed)
    for c in cells:
        entry = manifest.add_cell(c.cell_id, c.hash, c.axes, c.case, classes[c.cell_id].key)
        row = rows.get(c.cell_id)
        if getattr(manifest, "rebuilt", False) and not entry["submissions"]:
            entry["submissions"] = manifest.submissions_from_attempts(c.cell_id, launcher_kind(cluster))
            row = cell_rows(manifest, [c.cell_id])[0] if entry["submissions"] else None
        if row is None:
            if _completed_on_disk(manifest, c):  # e.g. a manifest rebuilt after it was lost
                counts["skip_completed"] += 1
                continue
            todo.append((c, classes[c.cell_id]))
            counts["new"] += 1
            continue
        status, ecls = row["status"], row["error_class"]
        last = entry["submissions"][-1]
        if status in RETRIED and "outcome" not in last:
            last["outcome"] = ecls or status
        if status == "completed":
            counts["skip_completed"] += 1
        elif status in WAITING:
            counts["running"] += 1
            counts["waiting"].append(c.cell_id)
        elif status in RETRIED:
            cls = ecls or ("diverged" if status == "diverged" else "code_error")
            used = sum(1 for s in entry["submissions"] if s.get("outcome") == cls)
            if used <= int(retry.get(cls, 0)):
                todo.append((c, classes[c.cell_id]))
                counts["retry" if status == "failed" else "resume"] += 1
            else:
                counts["exhausted"] += 1
                counts["out_of_retries"].append((c, cls, used, int(retry.get(cls, 0))))
        else:
            todo.append((c, classes[c.cell_id]))
            counts["resume"] += 1
    return todo, counts


def out_of_retries_lines(manifest: Manifest, exhausted: list[tuple[Cell, str, int, int]]) -> list[str]:
    """One line per cell out of retries (its class, the fields outside the hash changed since its
    last launch), then the command that retries them."""
    lines, raise_to = [], {}
    for c, cls, used, allowed in exhausted:
        try:
            old = read_json(manifest.layout.cell(c.cell_id).config)
            changed = changed_fields(old, c.config) if isinstance(old, dict) else []
        except (OSError, ValueError):
            changed = []
        since = f"; changed since its last run: {', '.join(changed)}" if changed else ""
        lines.append(
            f"  {c.cell_id}: out of retries ({cls}: failed {used} time(s), "
            f"sweep.retry.{cls}={allowed}){since}"
        )
        raise_to[f"sweep.retry.{cls}"] = max(used, raise_to.get(f"sweep.retry.{cls}", 0))
    lines.append(f"rsscale: to retry them: {continue_command('rsscale.sweep', raise_to)}")
    return lines


def launcher_kind(cluster: dict) -> str:
    return "local" if cluster.get("name") == "local" or cluster.get("kind") == "local" else "slurm"


def _completed_on_disk(manifest: Manifest, c: Cell) -> bool:
    if not manifest.layout.cell(c.cell_id).record.exists():
        return False
    rec = manifest.record(c.cell_id) or {}
    return rec.get("status") == "completed" and rec.get("cell_hash") == c.hash


def refresh_configs(manifest: Manifest, cells: list[Cell]) -> int:
    """Every launched cell runs the sweep's current config; say which unhashed fields changed."""
    written = 0
    for c in cells:
        changed = sync_config(manifest.cell_dir(c.cell_id), c.config)
        if changed is None or changed:
            written += 1
        if changed:
            manifest.cells[c.cell_id]["config_changed"] = {"fields": changed, "time": time.strftime("%F %T")}
            print(f"  {c.cell_id}: config refreshed ({', '.join(changed)})", flush=True)
    return written


def run_sweep(cfg: DictConfig, expanded: Callable[[], tuple[dict, list[Cell]]] | None = None) -> int:
    """Plan, launch, wait and collect; `expanded` gives the cells of a `-m` sweep (else the grid's)."""
    sweep_dir = Path(HydraConfig.get().sweep.dir).resolve()
    try:
        sweep_view(cfg, sweep_dir)  # a bad sweep.progress / progress_every_s fails before anything runs
        task = list(HydraConfig.get().overrides.task)
        spec, cells = expanded() if expanded else expand(cfg, overrides=task)
    except (GridError, ValueError) as e:
        raise SweepError(str(e)) from None
    manifest = Manifest.load_or_new(sweep_dir)
    with manifest.driver_lock():
        if manifest.data["grid"] not in (None, spec["name"]):
            raise SweepError(f"{sweep_dir} holds grid {manifest.data['grid']!r}, not {spec['name']!r}")
        manifest.data["grid"] = spec["name"]
        todo, counts = plan(cfg, manifest, cells)
        print(
            f"rsscale: grid {spec['name']}: {len(cells)} cells in {sweep_dir}\n"
            f"  to launch: {counts['new']} new, {counts['resume']} to resume, {counts['retry']} to retry; "
            f"skipped: {counts['skip_completed']} completed, {counts['running']} still queued/running, "
            f"{counts['exhausted']} out of retries",
            flush=True,
        )
        if counts["out_of_retries"]:
            print("\n".join(out_of_retries_lines(manifest, counts["out_of_retries"])), flush=True)
        if spec.get("command_line"):
            print(f"  the command line replaces the grid's: {'; '.join(spec['command_line'])}", flush=True)
        if cfg.sweep.dry_run:
            for c, rc in todo:
                print(f"  {c.cell_id}  {rc.key}")
            return 0
        manifest.data["commands"].append({"argv": sys.argv, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if refresh_configs(manifest, [c for c, _ in todo]):
            os.sync()  # the cells' configs are on disk before the manifest and the jobs refer to them
        manifest.save()
        cluster = OmegaConf.to_container(cfg.cluster, resolve=True)
        group = cfg.logger.group or sweep_dir.name
        items = [(c.cell_id, rc) for c, rc in todo]
        launched = [c.cell_id for c, _ in todo]
        if cluster["name"] == "local" or cluster.get("kind") == "local":
            if cfg.sweep.detach and todo:
                return _detach_local(sweep_dir)
            signum = _run_local(cfg, manifest, sweep_dir, cluster, group, items)
            if signum:
                rows = cell_rows(manifest)
                for r in rows:
                    manifest.cells[r["cell_id"]].update(status=r["status"], error_class=r["error_class"])
                manifest.save()
                n = sum(r["status"] != "completed" for r in rows)
                print(
                    f"rsscale: stopped; {n} cells not completed; resume them with: "
                    f"{continue_command('rsscale.sweep')}"
                )
                return 128 + signum
        elif todo:
            keys = {cid: rc.key for cid, rc in items}
            ids: dict[str, str] = {}

            def on_array(part: dict[str, str]) -> None:  # every queued array goes into the manifest
                ids.update(part)
                for cid, job_id in part.items():
                    manifest.add_submission(cid, job_id, "slurm", keys[cid])

            try:
                SlurmLauncher(sweep_dir, cluster, group).submit(items, on_array)
            except Exception as e:
                done = (
                    f"{len(ids)} of {len(items)} cells were submitted (recorded in the manifest); "
                    if ids
                    else ""
                )
                raise SweepError(f"submission failed: {done}{type(e).__name__}: {str(e).strip()}") from None
            finally:
                manifest.save()  # the ids of every queued array, also when a later one failed
            if cfg.sweep.detach:
                print(
                    f"rsscale: submitted {len(ids)} cells; "
                    f"follow with: python -m rsscale.status {sweep_dir} --watch"
                )
                return 0
            _wait_slurm(cfg, manifest, launched + counts["waiting"])
        elif counts["waiting"] and not cfg.sweep.detach:  # a re-run waits for what still runs
            _wait_slurm(cfg, manifest, counts["waiting"])
        rows = cell_rows(manifest)
        for r in rows:
            manifest.cells[r["cell_id"]].update(status=r["status"], error_class=r["error_class"])
        manifest.save()
    print(format_table(rows))
    if cfg.sweep.analyze:
        _analyze(sweep_dir)
    print(f"\nrsscale: results in {sweep_dir} (records: {SweepLayout(sweep_dir).cells}/*/{RECORD_NAME})")
    print(f"rsscale: status any time with: python -m rsscale.status {sweep_dir}")
    return 0 if all(r["status"] in ("completed", "diverged") for r in rows) else 1


def _run_local(cfg, manifest: Manifest, sweep_dir: Path, cluster, group, items) -> int | None:
    """Run the cells here; return the stop signal's number if one stopped the driver (else None)."""

    stop = {"flag": False}
    done = {"n": 0}

    def on_submit(cid: str, job_id: str) -> None:
        rc_key = manifest.cells[cid]["resource_class"]
        manifest.add_submission(cid, job_id, "local", rc_key)
        manifest.save()

    def on_done(cid: str, err: BaseException | None) -> None:
        done["n"] += 1
        stopped_by = driver.name if driver.requested else ("fail_fast" if stop["flag"] else None)
        if stopped_by:  # the driver asked it to stop: a preemption, whatever state it ended in
            manifest.cells[cid]["submissions"][-1]["stopped_by"] = stopped_by
            manifest.save()
        print(f"[{done['n']}/{len(items)}] {done_line(manifest, cid, err)}", flush=True)
        if err is not None and cfg.sweep.fail_fast and not driver.requested:
            stop["flag"] = True

    with DriverStop() as driver, sweep_view(cfg, manifest) as view:
        tick = poll_every(view, lambda: cell_rows(manifest, [cid for cid, _ in items]))
        LocalLauncher(sweep_dir, cluster, group).run(
            items, on_submit, on_done, should_stop=lambda: stop["flag"] or driver.requested, on_poll=tick
        )
    return driver.signum


def sweep_view(cfg, manifest: Manifest | Path, announce_failures: bool = False) -> SweepView:
    """The live view the config asks for (sweep.progress, sweep.progress_every_s)."""
    grid = manifest.data["grid"] if isinstance(manifest, Manifest) else None
    return SweepView(
        manifest.layout.root if isinstance(manifest, Manifest) else manifest,
        mode=str(cfg.sweep.progress),
        every_s=float(cfg.sweep.progress_every_s),
        title=f"grid {grid}" if grid else "",
        announce_failures=announce_failures,
    )


def done_line(manifest: Manifest, cid: str, err: BaseException | None) -> str:
    """`cell: status val top1 x (error_class: the exception's message)`: the error, not a log path."""
    row = cell_rows(manifest, [cid])[0]
    rec = manifest.record(cid) or {}
    msg = f"{cid}: {row['status']}"
    if row["val_top1"] is not None:
        msg += f" val top1 {row['val_top1']:.4f}"
    if row["status"] == "preempted":  # the reason it stopped, never submitit's log path
        stopped_by = (manifest.cells[cid]["submissions"] or [{}])[-1].get("stopped_by")
        why = f"stopped by {stopped_by}" if stopped_by else (rec.get("error") or "stopped")
        return f"{msg} (preempted: {why}; the next run resumes it)"
    if row["error_class"] == "storage":  # the path and errno, and the way out
        text = storage_error(manifest, cid) or rec.get("error") or "the storage failed"
        return (
            f"{msg} (storage: {text.strip()[:300]}); fix the storage (space, permissions), then: "
            f"{continue_command('rsscale.sweep')}"
        )
    if row["status"] != "completed":
        text = rec.get("error")
        if not text and row["error_class"] == "node_failure":
            text = "the process ended without recording an error (killed?)"
        if not text and err is not None:
            text = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        if row["error_class"] or text:
            msg += f" ({row['error_class'] or row['status']}: {(text or '').strip()[:300]})"
    return msg


def _wait_slurm(cfg, manifest: Manifest, cell_ids: list[str]) -> None:
    with sweep_view(cfg, manifest, announce_failures=True) as view:
        while True:
            rows = cell_rows(manifest, cell_ids)
            view.update(rows)
            counts = Counter(r["status"] for r in rows)
            if cfg.sweep.fail_fast and counts.get("failed"):
                live = [r["job_id"] for r in rows if r["status"] not in TERMINAL and r["job_id"]]
                SlurmLauncher.cancel(live)
                view.print("rsscale: fail_fast: a cell failed; cancelled the rest")
                return
            if all(r["status"] in TERMINAL for r in rows):
                return
            time.sleep(float(cfg.sweep.poll_s))


def _detach_local(sweep_dir: Path) -> int:
    """Local sweeps have no scheduler to hold them: a detached driver process runs them."""
    log_path = sweep_dir / "driver.log"
    args = [a for a in sys.argv[1:] if not a.startswith("sweep.detach")]
    with open(log_path, "a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rsscale.sweep", *args, "sweep.detach=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    print(
        f"rsscale: running detached (pid {proc.pid}, log {log_path}); "
        f"follow with: python -m rsscale.status {sweep_dir} --watch"
    )
    return 0


def _analyze(sweep_dir: Path) -> None:
    try:
        from rsscale.analyze import main as analyze_main
    except ImportError as e:
        print(f"rsscale: analysis unavailable: {e}")
        return
    try:
        analyze_main([str(sweep_dir), "--out", str(SweepLayout(sweep_dir).report)])
    except SystemExit as e:
        if e.code:
            print(f"rsscale: analysis did not complete (exit {e.code}); the results above stand")
    except Exception as e:  # noqa: BLE001 - a failed analysis never loses the sweep
        print(f"rsscale: analysis failed: {type(e).__name__}: {e}")


def _run_and_exit(cfg: DictConfig, expanded=None) -> None:
    try:
        code = run_sweep(cfg, expanded)
    except OSError as e:
        if not is_storage_error(e) and not isinstance(e, FileNotFoundError):
            raise
        print(f"rsscale.sweep: error: {storage_message(e)}", file=sys.stderr)
        code = 2
    except (SweepError, RuntimeError, ValueError) as e:
        print(f"rsscale.sweep: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:  # one line, not tracebacks (local cells are stopped by DriverStop)
        print(
            "rsscale: interrupted; queued jobs keep their state; resume with: "
            f"{continue_command('rsscale.sweep')}"
        )
        code = 130
    sys.exit(code)


def multirun_task(expanded: Callable[[], tuple[dict, list[Cell]]]) -> Callable[[DictConfig], None]:
    """The one job of a `-m` sweep (hydra_plugins/rsscale_sweeper): the driver on all its cells."""
    return lambda cfg: _run_and_exit(cfg, expanded)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    _run_and_exit(cfg)


def storage_message(e: OSError) -> str:
    """One line for a storage failure of the driver: the path, the reason, the command that continues."""
    if isinstance(e, FileNotFoundError):
        return str(e)
    return (
        f"storage: cannot write {e.filename or 'the sweep directory'}: {e.strerror or e}; "
        f"fix it (space, permissions, another hydra.sweep.dir=), then: {continue_command('rsscale.sweep')}"
    )


def sweep_dir_problem(path: Path) -> str | None:
    """Why the sweep directory cannot be created or written (before Hydra tries: it answers with
    tracebacks), or None. The nearest existing ancestor must be a writable directory."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a directory" + (f" (needed for {path})" if probe != path else "")
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def _precheck_sweep_dir(argv: list[str]) -> None:
    """A hydra.sweep.dir= (or sweep_root=) that cannot be written: one line, not Hydra's tracebacks."""
    given = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.sweep.dir=")]
    roots = [a.split("=", 1)[1] for a in argv if a.startswith("sweep_root=")]
    path = given[-1] if given else (roots[-1] if roots else os.environ.get("RSSCALE_SWEEP_ROOT", "runs"))
    problem = sweep_dir_problem(Path(path.strip("'\"")).absolute())
    if problem:
        print(
            f"rsscale.sweep: error: storage: {problem}; choose another hydra.sweep.dir= (or fix it), then: "
            f"{continue_command('rsscale.sweep')}",
            file=sys.stderr,
        )
        sys.exit(2)


def _precheck_grid(argv: list[str]) -> None:
    """Grid YAML errors surface inside Hydra's composition as tracebacks: check the file first."""
    path = grid_file(argv)
    if path is not None:
        try:
            check_grid_file(path)
        except GridError as e:
            print(f"rsscale.sweep: error: {e}", file=sys.stderr)
            sys.exit(2)


def cli() -> None:
    """`rsscale-sweep` and `python -m rsscale.sweep`; what Hydra would answer with a traceback is checked
    first, in one line."""
    _precheck_sweep_dir(sys.argv[1:])
    _precheck_grid(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
