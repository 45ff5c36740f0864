"""`python -m rsscale.sweep [+grid=NAME] [overrides]`: the main job.

Argument handling only: what Hydra would answer with a traceback (an unwritable sweep directory, a
broken grid file) is checked first, in one line; Hydra composes conf/ (+ sweeps/NAME.yaml); the
driver (rsscale.driver) plans, launches, waits, collects and writes the report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import rsscale.cli  # noqa: F401 - registers the resolver that --help lists the user's groups with
from rsscale.config import CONF_DIR
from rsscale.driver import drive
from rsscale.launch.grid import GridError, check_grid_file, grid_file
from rsscale.launch.multirun import dir_suffix
from rsscale.launch.way_out import continue_command

# The sweep-dir name: a hash of Hydra's own override record (conf/config.yaml: hydra.sweep.dir).
OmegaConf.register_new_resolver("rsscale_dir_suffix", dir_suffix, replace=True)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """The driver on Hydra's sweep directory and override record; exits with its status (a `-m` sweep
    runs the driver from hydra_plugins/rsscale_sweeper instead)."""
    hc = HydraConfig.get()
    sys.exit(drive(cfg, Path(hc.sweep.dir), list(hc.overrides.task)))


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
