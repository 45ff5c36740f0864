"""What the console scripts (`rsscale-sweep`, `rsscale-tune`, `rsscale-status`, `rsscale-analyze`,
`rsscale-bench`, `rsscale-bench-data`; pyproject's [project.scripts]) need for help and completion.

Hydra completes per app, by the first word of the command line: `python -m rsscale.sweep` cannot
be completed, a one-word script can (`eval "$(rsscale-sweep -sc install=bash)"`). The argparse
commands complete through argcomplete (`eval "$(register-python-argcomplete rsscale-status)"`).
`--help` lists the config groups a user chooses from (conf/, not the schema or hydra internals),
through the `rsscale_help_groups` resolver that conf/config.yaml's `hydra.help` calls.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from omegaconf import OmegaConf

# The groups a user picks options from; `grid` and `search` are added with `+` (no default).
USER_GROUPS = ("model", "data", "recipe", "runtime", "cluster", "logger")
APP_GROUPS = {"sweep": ("grid",), "tune": ("search",)}


def group_options(group: str) -> list[str]:
    """The option names of a conf/ group (its YAML files; sub-folders are other groups)."""
    from rsscale.config import CONF_DIR  # torch and the data registry: not for `rsscale-status`

    d = CONF_DIR / group
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def help_groups(app: str = "sweep") -> str:
    """`  model: resnet_rs, small` lines for the user-facing groups of `app` (sweep | tune)."""
    if app not in APP_GROUPS:
        raise ValueError(f"rsscale_help_groups: unknown app {app!r}; give one of {', '.join(APP_GROUPS)}")
    lines = [f"  {g}: {', '.join(group_options(g))}" for g in USER_GROUPS]
    lines += [f"  +{g}: {', '.join(group_options(g))}" for g in APP_GROUPS[app]]
    return "\n".join(lines)


OmegaConf.register_new_resolver("rsscale_help_groups", help_groups, replace=True)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parser.parse_args`, answering a shell's completion request first when argcomplete is here."""
    try:
        import argcomplete
    except ImportError:  # completion is a convenience: the command works without it
        pass
    else:
        argcomplete.autocomplete(parser)
    return parser.parse_args(argv)
