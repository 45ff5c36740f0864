"""A whole sweep: expand, plan, launch one wave, wait, collect, report.

`run_sweep` is what `python -m rsscale.sweep` and the Hydra sweeper (a `-m` sweep) call, through
`drive`, which turns the driver's errors into one line and an exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rsscale.driver.plan import out_of_retries_lines, plan, refresh_configs
from rsscale.driver.report import write_sweep_report
from rsscale.driver.settings import DriverSettings, SweepError
from rsscale.driver.wave import run_wave, submit, sweep_view
from rsscale.io import is_storage_error
from rsscale.launch.backends import BackendError, backend_for
from rsscale.launch.cell_states import format_table
from rsscale.launch.grid import Cell, GridError, expand
from rsscale.launch.manifest import Manifest
from rsscale.launch.way_out import continue_command
from rsscale.layout import RECORD_NAME, SweepLayout

Expanded = Callable[[], tuple[dict, list[Cell]]]


def run_sweep(
    cfg: DictConfig, sweep_dir: Path, task: Sequence[str] = (), expanded: Expanded | None = None
) -> int:
    """Plan, launch, wait and collect the sweep of `cfg` in `sweep_dir`; `task`: the command line's
    overrides (Hydra's record); `expanded` gives the cells of a `-m` sweep (else the grid's).
    Returns the exit status: 0 when every cell completed (or diverged)."""
    sweep_dir = Path(sweep_dir).resolve()
    try:
        settings = DriverSettings.from_sweep(OmegaConf.to_container(cfg.sweep, resolve=True))  # type: ignore[arg-type]
        sweep_view(settings, sweep_dir)  # a bad sweep.progress / progress_every_s fails before anything runs
        spec, cells = expanded() if expanded else expand(cfg, overrides=list(task))
        backend = backend_for(OmegaConf.to_container(cfg.cluster, resolve=True))  # type: ignore[arg-type]
    except (GridError, BackendError, ValueError) as e:
        raise SweepError(str(e)) from None
    manifest = Manifest.load_or_new(sweep_dir)
    with manifest.driver_lock():
        if manifest.data["grid"] not in (None, spec["name"]):
            raise SweepError(f"{sweep_dir} holds grid {manifest.data['grid']!r}, not {spec['name']!r}")
        manifest.data["grid"] = spec["name"]
        todo = plan(backend.with_limits(), manifest, cells, settings.retry)
        print(
            f"rsscale: grid {spec['name']}: {len(cells)} cells in {sweep_dir}\n{todo.summary()}", flush=True
        )
        if todo.out_of_retries:
            print("\n".join(out_of_retries_lines(manifest, todo.out_of_retries)), flush=True)
        if spec.get("command_line"):
            print(f"  the command line replaces the grid's: {'; '.join(spec['command_line'])}", flush=True)
        if settings.dry_run:
            for c, rc in todo.todo:
                print(f"  {c.cell_id}  {rc.key}")
            return 0
        manifest.data["commands"].append({"argv": sys.argv, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if refresh_configs(manifest, [c for c, _ in todo.todo]):
            os.sync()  # the cells' configs are on disk before the manifest and the jobs refer to them
        manifest.save()
        group = cfg.logger.group or sweep_dir.name
        items = [(c.cell_id, rc) for c, rc in todo.todo]
        if settings.detach and items:
            if backend.owns_cells:  # no scheduler holds them: a detached driver process runs them
                return detach_driver(sweep_dir)
            ids = submit(backend, manifest, items, group)
            print(
                f"rsscale: submitted {len(ids)} cells; "
                f"follow with: python -m rsscale.status {sweep_dir} --watch"
            )
            return 0
        waiting = [] if settings.detach else todo.waiting  # a re-run waits for what still runs
        wave = run_wave(backend, manifest, items, settings, group, waiting)
        rows = wave.rows
        if wave.signum:
            n = sum(r["status"] != "completed" for r in rows)
            print(
                f"rsscale: stopped; {n} cells not completed; resume them with: "
                f"{continue_command('rsscale.sweep')}"
            )
            return 128 + wave.signum
    print(format_table(rows))
    if settings.analyze:
        write_sweep_report(sweep_dir)
    print(f"\nrsscale: results in {sweep_dir} (records: {SweepLayout(sweep_dir).cells}/*/{RECORD_NAME})")
    print(f"rsscale: status any time with: python -m rsscale.status {sweep_dir}")
    return 0 if all(r["status"] in ("completed", "diverged") for r in rows) else 1


def detach_driver(sweep_dir: Path) -> int:
    """Cells that live only while their driver does: a detached driver process runs them."""
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


def drive(
    cfg: DictConfig, sweep_dir: Path, task: Sequence[str] = (), expanded: Expanded | None = None
) -> int:
    """`run_sweep`, with its errors as one line on stderr: the exit status (2: bad input or storage,
    130: interrupted)."""
    try:
        return run_sweep(cfg, sweep_dir, task, expanded)
    except OSError as e:
        if not is_storage_error(e) and not isinstance(e, FileNotFoundError):
            raise
        print(f"rsscale.sweep: error: {storage_message(e)}", file=sys.stderr)
        return 2
    except (SweepError, RuntimeError, ValueError) as e:
        print(f"rsscale.sweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # one line, not tracebacks (owned cells are stopped by DriverStop)
        print(
            "rsscale: interrupted; queued jobs keep their state; resume with: "
            f"{continue_command('rsscale.sweep')}"
        )
        return 130


def storage_message(e: OSError) -> str:
    """One line for a storage failure of the driver: the path, the reason, the command that continues."""
    if isinstance(e, FileNotFoundError):
        return str(e)
    return (
        f"storage: cannot write {e.filename or 'the sweep directory'}: {e.strerror or e}; "
        f"fix it (space, permissions, another hydra.sweep.dir=), then: {continue_command('rsscale.sweep')}"
    )
