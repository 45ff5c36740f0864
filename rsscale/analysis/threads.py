"""Threads for the batched solver's independent chunks.

A batched fit (every bootstrap resample of every path, or of the joint law) is solved in
chunks that bound memory; numpy releases the GIL inside its array operations, so the chunks
run in parallel on several cores. Every chunk is solved alone (each row's iterations depend
on that row only), so the answers do not depend on the number of threads. ``RSSCALE_THREADS``
sets the number (1: no pool); by default, the cores this process may run on, at most 8.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_DEFAULT = 8


def n_threads() -> int:
    """Threads for the solver: RSSCALE_THREADS, else the usable cores (at most 8)."""
    env = os.environ.get("RSSCALE_THREADS", "").strip()
    if env:
        try:
            v = int(env)
        except ValueError:
            v = 0
        if v < 1:
            raise ValueError(f"RSSCALE_THREADS must be a positive integer, got {env!r}")
        return v
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT))


def n_chunks(rows: int, rows_per_chunk: int, threads: int) -> int:
    """How many chunks to cut ``rows`` into: enough that none exceeds ``rows_per_chunk``, and
    a multiple of ``threads`` (so no thread idles while another finishes a last chunk)."""
    k = max(1, -(-rows // max(rows_per_chunk, 1)))
    if threads > 1:
        k = -(-k // threads) * threads
    return max(1, min(k, rows))


def map_chunks(fn: Callable[[Any], Any], items: Iterable[Any], threads: int | None = None) -> list[Any]:
    """``[fn(i) for i in items]``, on a thread pool when there is more than one item and thread."""
    items = list(items)
    k = min(n_threads() if threads is None else threads, len(items))
    if k <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(k) as ex:
        return list(ex.map(fn, items))
