"""Where a notebook's `source` is: Jupyter starts the kernel in analysis/, `make demo` writes runs/
at the repository root, so a relative path is looked up from the working directory and then from
the repository root (the nearest directory above holding pyproject.toml)."""

from __future__ import annotations

import os
from pathlib import Path

import rsscale
from rsscale.analysis.columns import LoadError

MARKER = "pyproject.toml"


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest directory at or above `start` (default: the working directory) with pyproject.toml."""
    p = Path(start or Path.cwd()).resolve()
    for d in (p, *p.parents):
        if (d / MARKER).is_file():
            return d
    return None


def find_source(source: str | os.PathLike, start: str | os.PathLike | None = None) -> str:
    """`source` as load_results takes it: wandb: and absolute paths as given; a relative path from
    `start` (the working directory), else from the repository root above it, else from the root of
    the checkout rsscale is imported from. Raises LoadError naming every place it looked."""
    s = str(source)
    if s.startswith("wandb:") or Path(s).is_absolute():
        return s
    here = Path(start or Path.cwd()).resolve()
    tried = [here]
    for root in (repo_root(here), repo_root(Path(rsscale.__file__).parent)):
        if root is not None and root not in tried:
            tried.append(root)
    for base in tried:
        if (base / s).exists():
            return str(base / s)
    raise LoadError(
        f"{s}: not found under {', '.join(str(b) for b in tried)}; run `make demo` at the repository "
        "root (it writes runs/depth_width) or set `source` to a sweep directory, a results table or "
        "wandb:ENTITY/PROJECT[/GROUP]"
    )
