"""The tuner's view of its study: trials done/running/pruned/failed, the best so far, and one line
per running trial with its cell's step-level progress (the same rendering as a sweep's)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from rsscale.launch.live import LiveBlock, progress_line
from rsscale.layout import StudyLayout
from rsscale.progress import read_progress
from rsscale.tune.trial_states import trial_rows

ACTIVE = ("running", "stale")


class TuneView(LiveBlock):
    """Polled by the tune driver (or `rsscale-status STUDY --watch`): `update()` reads the study."""

    def __init__(
        self,
        study_dir: str | Path,
        *,
        mode: str = "auto",
        every_s: float = 10.0,
        stream: TextIO | None = None,
    ):
        super().__init__(mode, every_s, stream)
        self.study_dir = Path(study_dir)
        self.seen: dict[int, str] = {}
        self.primed = False  # the first read only learns the trials that ended before the driver

    def update(self) -> list[dict[str, Any]]:
        """The trial rows (also when quiet: the caller decides when to stop from them)."""
        head, rows = trial_rows(self.study_dir)
        for r in rows:  # a trial's end is news (pruned and failed ones too); earlier ends are not
            ended = r["state"] in ("complete", "pruned", "fail")
            if ended and self.primed and self.seen.get(r["trial"]) != r["state"]:
                self.print(_ended(r))
            self.seen[r["trial"]] = r["state"]
        self.primed = True
        if self.mode != "quiet":
            self.show(self.lines(head, rows), Counter(r["state"] for r in rows))
        return rows

    def lines(self, head: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
        c = Counter(r["state"] for r in rows)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(c.items())) or "no trials yet"
        best = head.get("best")
        best_txt = f"; best trial {best['trial']} minival {best['minival_top1']:.4f}" if best else ""
        out = [
            f"rsscale {time.strftime('%H:%M:%S')} study {head['study_name']}: "
            f"{head['used']}/{head['n_trials']} trials used ({counts}){best_txt}"
        ]
        layout = StudyLayout(self.study_dir)
        for r in rows:
            if r["state"] in ACTIVE and r["cell_id"]:
                prog = read_progress(layout.cell(r["cell_id"]).progress)
                out.append("  " + progress_line(f"trial {r['trial']}", prog))
        return out


def _ended(r: dict[str, Any]) -> str:
    v = r.get("minival_top1")
    value = f" minival {v:.4f}" if isinstance(v, float) else ""
    return f"rsscale: trial {r['trial']} {r['state']}{value} {r.get('params') or ''}".rstrip()


def watch_study(study_dir: str | Path, every_s: float, mode: str = "auto") -> None:
    """`rsscale-status STUDY --watch`: until no trial runs (a detached SLURM study included)."""
    with TuneView(study_dir, mode=mode, every_s=every_s) as view:
        while True:
            rows = view.update()
            if rows and not any(r["state"] in ACTIVE + ("waiting",) for r in rows):
                return
            time.sleep(min(every_s, 2.0))
