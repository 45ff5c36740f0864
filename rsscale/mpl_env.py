"""Matplotlib made quiet before its first import: a persistent, writable cache directory.

Where ~/.config/matplotlib or ~/.cache/matplotlib cannot be written (a read-only or odd HOME on a
cluster node), matplotlib warns that it made a temporary cache and rebuilds its font cache on every
import ("Matplotlib is building the font cache"); those lines leaked into `rsscale.tune` output.
Pointing MPLCONFIGDIR at one persistent directory builds the cache once; the font manager's
build notice is silenced as well (it is progress chatter, not a problem the user can act on).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        return os.access(d, os.W_OK | os.X_OK) and d.is_dir()
    except OSError:
        return False


def _default_dirs() -> list[Path]:
    """Matplotlib's config and cache directories when MPLCONFIGDIR is unset (Linux/macOS)."""
    home = Path(os.path.expanduser("~"))
    config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    cache = os.environ.get("XDG_CACHE_HOME") or str(home / ".cache")
    return [Path(config) / "matplotlib", Path(cache) / "matplotlib"]


def quiet_matplotlib() -> None:
    """Call before importing matplotlib (later calls only silence the font-cache notice)."""
    fresh = "matplotlib" not in sys.modules and not os.environ.get("MPLCONFIGDIR")
    if fresh and not all(_writable(d) for d in _default_dirs()):
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        fallback = Path(tempfile.gettempdir()) / f"rsscale-matplotlib-{uid}"
        if _writable(fallback):
            os.environ["MPLCONFIGDIR"] = str(fallback)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
