"""The local driver owns its cells: nothing keeps training after the driver is gone.

Driver side: SIGTERM, SIGINT and SIGHUP (`timeout`, Ctrl-C, a closed terminal) set a stop flag; the
launcher then asks every running cell to stop (SIGTERM to its submitit controller, which forwards
it), waits for their checkpoints and exits with one line. The controllers and cells are started
with SIGINT/SIGHUP ignored, so that the terminal's signal reaches only the driver, which stops them
in order instead of submitit's SIGINT-then-SIGKILL after one second.

Cell side (cells whose backend names SIGTERM a stop signal: local ones): SIGTERM means "checkpoint
at the next step boundary and stop" (status `preempted`, resumed by the next run), and a watchdog
thread sends that SIGTERM itself when the driver process dies without a word (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

DRIVER_PID_ENV = "RSSCALE_DRIVER_PID"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SHIELDED = {signal.SIGINT, signal.SIGHUP}


class DriverStop:
    """Context manager for the driver: records the first stop signal instead of raising."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handler(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(
                f"rsscale: {signal.Signals(signum).name}: stopping; running cells checkpoint and stop "
                "(re-run the same command to resume them)",
                flush=True,
            )

    def __enter__(self) -> DriverStop:
        os.environ[DRIVER_PID_ENV] = str(os.getpid())  # inherited by the cells' watchdogs
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> bool:
        for s, h in self._previous.items():
            signal.signal(s, h)
        os.environ.pop(DRIVER_PID_ENV, None)
        return False


@contextlib.contextmanager
def shielded_spawn() -> Iterator[None]:
    """Processes started inside inherit SIGINT/SIGHUP as ignored; the driver's own are held meanwhile
    (blocked, then delivered to its handler on exit), so that none is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SHIELDED)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _SHIELDED}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def stop_job(job) -> None:
    """Ask a local submitit job to stop: its controller (pid = job id) forwards SIGTERM to the cell."""
    with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
        os.kill(int(job.job_id), signal.SIGTERM)


# ---------------------------------------------------------------------------------------------- cell
class StopBeforeTraining(SystemExit):
    """SIGTERM before the train loop took over the signal: nothing to checkpoint yet."""


def install_cell_side(stop_signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
    """In a cell its driver owns: the stop signals stop it (the loop's handler takes over while it
    trains; before, this one exits at once), and the driver's death is noticed within a second."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SHIELDED)  # ignored still; unblocked for grandchildren

    def before_training(signum, frame):
        raise StopBeforeTraining(f"stopped by {signal.Signals(signum).name} before training started")

    for s in stop_signals:
        signal.signal(s, before_training)
    pid = os.environ.get(DRIVER_PID_ENV)
    if pid and pid.isdigit():
        threading.Thread(target=_watch, args=(int(pid),), daemon=True, name="rsscale-driver-watch").start()


def _watch(driver_pid: int, poll_s: float = 1.0) -> None:
    while pid_alive(driver_pid):
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
