"""The command that continues: every "cannot continue" line ends with it, built from this process's
own command line so that it can be pasted as is.

`rsscale-sweep` / `rsscale-tune` (console scripts) are kept as typed; anything else (`python -m
rsscale.sweep`, a test's `sys.executable -m ...`) is spelled `python -m <module>`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence


def continue_command(
    module: str, set_fields: Mapping[str, object] | None = None, argv: Sequence[str] | None = None
) -> str:
    """The current command line with `set_fields` (`key=value`) replacing any earlier `key=`."""
    argv = list(sys.argv if argv is None else argv)
    program = os.path.basename(argv[0]) if argv else ""
    head = [program] if program.startswith("rsscale-") else ["python", "-m", module]
    keys = tuple(f"{k}=" for k in (set_fields or {}))
    args = [a for a in argv[1:] if not a.lstrip("+").startswith(keys)] if keys else argv[1:]
    args += [f"{k}={v}" for k, v in (set_fields or {}).items()]
    return shlex.join([*head, *args])
