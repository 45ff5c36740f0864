"""Backends by name: the cluster profile's `launcher` picks one (docs/backends.md).

A backend registers itself once (`register("name", Class)`), from rsscale or from anywhere else
(a plugin, a test), and every cluster profile with `launcher: name` then runs on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rsscale.launch.backends.base import Backend, BackendError

_REGISTRY: dict[str, type[Backend]] = {}
DEFAULT = "slurm"  # a profile that names no launcher (e.g. an old site profile): a SLURM site


def register(name: str, backend: type[Backend]) -> None:
    """Make `backend` the one for `launcher: name` (a later registration of the name replaces it)."""
    if not name or not isinstance(backend, type) or not issubclass(backend, Backend):
        raise TypeError(f"register({name!r}, {backend!r}): need a name and a Backend subclass")
    _REGISTRY[name] = backend


def registered() -> list[str]:
    return sorted(_REGISTRY)


def backend_name(cluster: Mapping[str, Any]) -> str:
    """Which backend a profile runs on: `launcher` (older profiles: `kind`), else the profile's name if
    a backend has it (`local`), else SLURM."""
    given = cluster.get("launcher") or cluster.get("kind")
    if given:
        if str(given) not in _REGISTRY:
            raise BackendError(
                f"cluster.launcher={given!r}: no such backend (registered: {', '.join(registered())})"
            )
        return str(given)
    name = str(cluster.get("name") or "")
    return name if name in _REGISTRY else DEFAULT


def backend_for(cluster: Mapping[str, Any]) -> Backend:
    """The backend a cluster profile runs on, holding the profile."""
    return _REGISTRY[backend_name(cluster)](cluster)


def backend_named(name: str, cluster: Mapping[str, Any] | None = None) -> Backend:
    """The backend of a manifest's submission (its `launcher` field), for reading job states."""
    if name not in _REGISTRY:
        raise BackendError(
            f"launcher {name!r} of a submission: no such backend (registered: {', '.join(registered())})"
        )
    return _REGISTRY[name](cluster or {"name": name})
