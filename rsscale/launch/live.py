"""The driver's view of a running study: one line per running cell, counts, failures, the sweep's ETA.

Cells report step-level progress in cells/<id>/progress.json (rsscale/progress.py), so the same
view serves local cells, SLURM arrays and `rsscale-status DIR --watch`. Modes: `live` redraws in
place with rich (a terminal), `lines` prints the block every `every_s` seconds and whenever the
counts change (CI, SLURM, nohup), `auto` picks by whether the stream is a terminal, `quiet` prints
nothing. The caller polls; `update(rows)` takes the status rows it already has (no second sacct).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from rsscale.launch.eta import cell_seconds_estimate
from rsscale.layout import SweepLayout
from rsscale.progress import read_progress

MODES = ("auto", "live", "lines", "quiet")
QUEUED = ("new", "pending", "requeued", "interrupted")  # waiting for a slot or a (re)start
STALE_S = 300.0  # a running cell's progress older than this is flagged


def check_mode(mode: str, key: str = "sweep.progress") -> str:
    if mode not in MODES:
        raise ValueError(f"{key}={mode!r} is not allowed; give one of {', '.join(MODES)}")
    return mode


def duration(seconds: float | None) -> str:
    """'1h02m', '4m10s', '37s'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_line(name: str, prog: Mapping[str, Any] | None, now: float | None = None) -> str:
    """`name  epoch 2/4  step 130/400 (32%)  215 img/s  ETA 1m05s` from a cell's progress file."""
    if prog is None:
        return f"{name}  starting"
    step, total = int(prog.get("step", 0)), int(prog.get("steps_total", 0))
    pct = f" ({100 * step // total}%)" if total else ""
    epochs = int(prog.get("epochs") or 1)
    parts = [name, f"epoch {min(int(prog.get('epoch', 0)) + 1, epochs)}/{epochs}"]
    parts.append(f"step {step}/{total}{pct}")
    if prog.get("phase") != "training":
        parts.append(str(prog.get("phase")))
    if prog.get("img_s"):
        parts.append(f"{prog['img_s']:.0f} img/s")
    parts.append(f"ETA {duration(prog.get('eta_s'))}")
    age = (now or time.time()) - float(prog.get("updated_at", 0))
    if age > STALE_S:
        parts.append(f"(no update for {duration(age)})")
    return "  ".join(parts)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _started_at(layout: SweepLayout, cell_id: str) -> float | None:
    """When the cell's current attempt started (its attempts.jsonl line), as a Unix time."""
    import datetime as dt

    from rsscale.launch.manifest import last_attempt

    line = last_attempt(layout.cell(cell_id).attempts)
    try:
        return dt.datetime.fromisoformat(str(line["time"])).timestamp() if line else None
    except (KeyError, TypeError, ValueError):
        return None


def _finished_at(rec: Mapping[str, Any]) -> float | None:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(rec["finished"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


class Snapshot:
    """What the view shows at one poll, computed from the status rows and the cells' files.

    The ETA is in whole-cell seconds (start-up, training, evaluation: what a slot is busy for), from
    the cost model scaled by the completed cells' measured wall time; until a cell completes, by the
    running cells' projected training time. It divides by the slots the sweep has used (`slots`), not
    by the cells running at this instant, so the gap between two cells does not double it.
    """

    def __init__(
        self, layout: SweepLayout, rows: Sequence[Mapping[str, Any]], configs: dict[str, Any], slots: int = 1
    ):
        self.now = time.time()
        self.counts = Counter("queued" if r["status"] in QUEUED else r["status"] for r in rows)
        self.running = [
            (r["cell_id"], read_progress(layout.cell(r["cell_id"]).progress))
            for r in rows
            if r["status"] == "running"
        ]
        self.eta = self._eta(layout, rows, configs, max(slots, len(self.running), 1))

    def _eta(self, layout: SweepLayout, rows, configs: dict[str, Any], slots: int) -> float | None:
        """Remaining seconds of the running cells plus the queued cells' estimates, over `slots`."""

        def config(cid: str) -> Any:
            if cid not in configs:
                configs[cid] = _read_json(layout.cell(cid).config)
            return configs[cid]

        walls, projected = [], []  # (config, seconds): completed cells' wall; running cells' training
        for r in rows:
            cid = r["cell_id"]
            if r["status"] == "completed":
                rec = _read_json(layout.cell(cid).record) or {}
                start, end = _started_at(layout, cid), _finished_at(rec)
                if rec.get("config") and rec.get("attempts") == 1 and start and end and end > start:
                    walls.append((rec["config"], end - start))
        for cid, prog in self.running:
            done = int(prog["step"]) - int(prog.get("resumed_from", 0)) if prog else 0
            if done > 0 and config(cid) and prog and prog.get("elapsed_s"):
                projected.append((config(cid), float(prog["elapsed_s"]) * int(prog["steps_total"]) / done))
        measured = walls or projected
        left: list[float | None] = []
        for cid, prog in self.running:
            cfg, started = config(cid), _started_at(layout, cid)
            whole = cell_seconds_estimate(cfg, walls) if cfg and walls and started else None
            own = float(prog["eta_s"]) if prog and prog.get("eta_s") is not None else None
            if whole is not None and started is not None:
                left.append(max(whole - (self.now - started), own or 0.0))
            else:
                left.append(own)
        for r in rows:
            if r["status"] in QUEUED:
                cfg = config(r["cell_id"])
                left.append(cell_seconds_estimate(cfg, measured) if cfg else None)
        if not left:
            return 0.0
        if any(x is None for x in left):
            return None
        return sum(x for x in left if x is not None) / slots

    def lines(self, title: str) -> list[str]:
        order = ["running", "queued", "completed", "failed"]
        names = order + sorted(k for k in self.counts if k not in order)
        counts = ", ".join(f"{self.counts.get(k, 0)} {k}" for k in names if k in order or self.counts.get(k))
        eta = "" if not self.running and not self.counts.get("queued") else f"; ETA {duration(self.eta)}"
        head = f"rsscale {time.strftime('%H:%M:%S', time.localtime(self.now))} {title}{counts}{eta}"
        return [head] + ["  " + progress_line(cid, p, self.now) for cid, p in self.running]


class LiveBlock:
    """A block of lines shown per `mode`: redrawn in place (live), printed when due (lines), or not."""

    def __init__(self, mode: str = "auto", every_s: float = 10.0, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        mode = check_mode(mode)
        if mode == "auto":
            mode = "live" if self.stream.isatty() else "lines"
        self.mode, self.every_s = mode, float(every_s)
        if self.every_s <= 0:
            raise ValueError(f"progress_every_s={every_s!r} must be positive")
        self.live = None
        self.last_print = float("-inf")
        self.last_key: Any = None

    def __enter__(self):
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=self.stream), refresh_per_second=2, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc) -> bool:
        if self.live is not None:
            self.live.stop()
            self.live = None
        return False

    def show(self, lines: list[str], key: Any) -> None:
        """Redraw, or print if `every_s` passed or `key` (what counts as news) changed."""
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text("\n".join(lines)))
            return
        now = time.monotonic()
        if self.mode == "lines" and (now - self.last_print >= self.every_s or key != self.last_key):
            print("\n".join(lines), file=self.stream, flush=True)
            self.last_print, self.last_key = now, key

    def print(self, text: str) -> None:
        """A line above the live block (or a plain line; quiet mode too: events are not progress)."""
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)


class SweepView(LiveBlock):
    """Polled by a driver loop: `update(rows)` redraws (live) or prints when due (lines)."""

    def __init__(
        self,
        sweep_dir: str | Path,
        *,
        mode: str = "auto",
        every_s: float = 10.0,
        title: str = "",
        stream: TextIO | None = None,
        announce_failures: bool = False,
    ):
        super().__init__(mode, every_s, stream)
        self.layout = SweepLayout(sweep_dir)
        self.title = f"{title}: " if title else ""
        self.announce = announce_failures
        self.configs: dict[str, Any] = {}
        self.failed: set[str] = set()
        self.slots = 1  # the most cells seen running at once: the sweep's parallelism, as used

    def update(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.announce:
            self._announce(rows)
        if self.mode == "quiet":
            return
        self.slots = max(self.slots, sum(r["status"] == "running" for r in rows))
        snap = Snapshot(self.layout, rows, self.configs, self.slots)
        self.show(snap.lines(self.title), snap.counts)

    def _announce(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            if r["status"] == "failed" and r["cell_id"] not in self.failed:
                self.failed.add(r["cell_id"])
                msg = f"rsscale: {r['cell_id']} failed ({r.get('error_class') or 'unknown'})"
                rec = _read_json(self.layout.cell(r["cell_id"]).record) or {}
                if rec.get("error"):
                    msg += f": {str(rec['error']).strip().splitlines()[-1][:200]}"
                self.print(msg)


def poll_every(view: LiveBlock, rows: Callable[[], Sequence[Mapping[str, Any]]], period_s: float = 1.0):
    """A throttled poll for a loop that spins faster than the view needs (the local launcher's 0.5 s)."""
    state = {"t": float("-inf")}

    def tick() -> None:
        now = time.monotonic()
        if view.mode != "quiet" and now - state["t"] >= min(period_s, view.every_s):
            state["t"] = now
            view.update(rows())  # type: ignore[attr-defined]

    return tick


def watch_sweep(sweep_dir: str | Path, every_s: float, mode: str = "auto") -> list[dict[str, Any]]:
    """`rsscale-status DIR --watch`: the view of a sweep someone else drives, until every cell ends."""
    from rsscale.launch.cell_states import cell_rows
    from rsscale.launch.manifest import Manifest
    from rsscale.states import WAITING

    with SweepView(sweep_dir, mode=mode, every_s=every_s, announce_failures=True) as view:
        while True:
            rows = cell_rows(Manifest.load(sweep_dir))  # re-read: the driver rewrites the manifest
            view.update(rows)
            if not any(r["status"] in WAITING for r in rows):  # nobody runs or queues a cell any more
                return rows
            time.sleep(min(every_s, 2.0))
