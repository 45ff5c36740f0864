"""Batched SLURM queries for `rsscale.status` and the sweep driver.

One `sacct` call answers for every job of a sweep (ids are chunked only when the command line would
get long), so polling a 10,000-cell sweep costs a handful of processes, not 10,000.

* `sacct_states(ids)`  -> {job_id: JobState} from accounting (slurmdbd). Array tasks are keyed
  "123_4"; a plain array id ("123") expands to all of its tasks; a still-pending array range
  ("123_[5-9%2]") is expanded to one PENDING entry per task. With requeues, sacct keeps one record per
  run: the newest is reported and `restarts` counts the earlier ones (`previous` lists their states).
* `squeue_states(ids)` -> {job_id: JobState} of queued/running jobs from the controller, which knows
  at once (accounting learns of a job ~1 s after sbatch and of its start 1-3 s after it runs).
* `job_states(ids)`    -> sacct, corrected by squeue where accounting lags (use this for polling).
* `classify(state)`    -> the run record's error_class for a terminal state (None if not an error).
* `slurm_available()`, `site_limits()` (MaxArraySize, MaxJobCount; cached), `partition_cpus(p)`,
  `partition_gpus(p, gres)` (from sinfo), `with_node_limits(cluster)` (a profile's `auto` node
  limits filled in from them, for the checks before submission).

sacct/squeue warnings on stderr are never printed; a failing command raises `SlurmError`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from submitit.slurm.slurm import read_job_id

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "JobState",
    "SlurmError",
    "classify",
    "job_states",
    "node_gpus",
    "partition_cpus",
    "partition_gpus",
    "sacct_states",
    "site_limits",
    "slurm_available",
    "squeue_states",
    "with_node_limits",
]

#: States after which SLURM will not run the job again by itself.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)
#: States of a job that is queued or running (REQUEUED: a requeue in progress, it will run again).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "COMPLETING",
        "CONFIGURING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)

_ERROR_CLASS = {
    "OUT_OF_MEMORY": "oom",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "NODE_FAIL": "node_failure",
    "BOOT_FAIL": "node_failure",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "PREEMPTED": "preempted",
    "FAILED": "code_error",
}

CHUNK = 1000  # ids per sacct call: ~10 KB of command line, far below ARG_MAX
_TIMEOUT_S = 120
_ENV_OVERRIDES = {"SLURM_TIME_FORMAT": "standard"}  # ISO times whatever the user's environment says
_SACCT_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "ElapsedRaw", "Submit", "Start", "End", "NodeList")


class SlurmError(RuntimeError):
    """A SLURM command failed (non-zero exit, timeout, or not installed)."""


@dataclass(frozen=True)
class JobState:
    """The state of one job or array task, as SLURM reports it."""

    job_id: str  # "123" or "123_4" (array task)
    state: str  # normalised SLURM state: "COMPLETED", "CANCELLED" (not "CANCELLED by 0"), ...
    exit_code: int | None = None  # from ExitCode "code:signal"; None when unknown (squeue)
    signal: int | None = None  # the signal that ended the batch script, if any
    elapsed_s: int | None = None  # run time of the newest run
    restarts: int = 0  # earlier runs of the same job (requeues: preemption, timeout, node failure)
    previous: tuple[str, ...] = field(default=())  # states of the earlier runs, oldest first
    node: str | None = None
    submit: str | None = None  # ISO times, None when unknown
    start: str | None = None
    end: str | None = None
    reason: str | None = None  # squeue's pending/running reason
    source: str = "sacct"  # "sacct" or "squeue"

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return not self.terminal

    @property
    def error_class(self) -> str | None:
        return classify(self)


def classify(state: JobState | str) -> str | None:
    """Map a SLURM state to the run record's error_class.

    "oom" | "timeout" | "node_failure" | "cancelled" | "preempted" | "code_error", or None for
    COMPLETED and for states that are not final (PENDING, RUNNING, REQUEUED, ...).
    """
    s = _normalise_state(state.state if isinstance(state, JobState) else state)
    return _ERROR_CLASS.get(s)


# ----------------------------------------------------------------------------------------- running
def _run(cmd: list[str], timeout: float = _TIMEOUT_S) -> str:
    """Run a SLURM command; return stdout. Stderr (warnings) is swallowed unless the command fails."""
    env = {**os.environ, **_ENV_OVERRIDES}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError as e:
        raise SlurmError(f"{cmd[0]} not found: is SLURM installed (scripts/slurm_up.sh)?") from e
    except subprocess.TimeoutExpired as e:
        raise SlurmError(f"{cmd[0]} timed out after {timeout:.0f}s: {_short(cmd)}") from e
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip() or "(no output)"
        raise SlurmError(f"{_short(cmd)} failed with exit code {proc.returncode}: {msg}")
    return proc.stdout


def _short(cmd: list[str], limit: int = 300) -> str:
    s = " ".join(cmd)
    return s if len(s) <= limit else s[:limit] + " ..."


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# ----------------------------------------------------------------------------------------- parsing
def _normalise_state(raw: str) -> str:
    # "CANCELLED by 0" -> "CANCELLED"; "RUNNING+" (truncated) -> "RUNNING"
    s = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    return s or "UNKNOWN"


def _parse_exit(raw: str) -> tuple[int | None, int | None]:
    try:
        code, sig = raw.split(":", 1)
        return int(code), int(sig)
    except ValueError:
        return None, None


def _int_or_none(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def _time_or_none(raw: str) -> str | None:
    raw = raw.strip()
    return None if raw in ("", "Unknown", "None", "N/A") else raw


def _is_range(job_id: str) -> bool:
    """A pending array's not-yet-split task range, as sacct/squeue print it: '123_[5-9%2]'."""
    return "_[" in job_id


def _expand_job_id(job_id: str) -> list[str]:
    """'123_[1,3,5-7%2]' -> ['123_1', '123_3', '123_5', '123_6', '123_7']; other ids unchanged.

    The ranges are parsed by submitit's `read_job_id` (the parser its own watcher uses)."""
    if not _is_range(job_id):
        return [job_id]
    try:
        parsed = read_job_id(job_id)
    except ValueError:
        return [job_id]
    out: list[str] = []
    for main, *bounds in parsed:
        if not bounds:
            return [job_id]
        out.extend(f"{main}_{i}" for i in range(int(bounds[0]), int(bounds[-1]) + 1))
    return out


def _base(job_id: str) -> str:
    return job_id.split("_", 1)[0].split(".", 1)[0]


def _parse_sacct(text: str) -> dict[str, JobState]:
    """Parse `sacct -D -P -n` output (allocation lines followed by their step lines)."""
    runs: dict[str, list[dict]] = {}  # job_id -> runs in sacct's order (oldest first)
    pending_ranges: dict[str, dict] = {}  # tasks of a not-yet-split array range "123_[5-9]"
    current: dict | None = None
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != len(_SACCT_FIELDS):
            continue
        rec = dict(zip(_SACCT_FIELDS, parts))
        jid = rec["JobID"].strip()
        if not jid:
            continue
        if "." in jid:  # a step (.batch, .extern, .0) of the allocation line just above
            if current is not None and _normalise_state(rec["State"]) == "OUT_OF_MEMORY":
                current["oom"] = True
            continue
        current = {**rec, "oom": False}
        if _is_range(jid):
            for task_id in _expand_job_id(jid):
                pending_ranges[task_id] = current
        else:
            runs.setdefault(jid, []).append(current)
    for task_id, rec in pending_ranges.items():
        runs.setdefault(task_id, [rec])  # a task with a record of its own is not pending any more
    out: dict[str, JobState] = {}
    for task_id, recs in runs.items():
        last = recs[-1]
        state = _normalise_state(last["State"])
        if last["oom"] and state in ("FAILED", "CANCELLED"):
            state = "OUT_OF_MEMORY"  # the step was OOM-killed but the allocation says FAILED
        code, sig = _parse_exit(last["ExitCode"])
        out[task_id] = JobState(
            job_id=task_id,
            state=state,
            exit_code=code,
            signal=sig,
            elapsed_s=_int_or_none(last["ElapsedRaw"]),
            restarts=len(recs) - 1,
            previous=tuple(_normalise_state(r["State"]) for r in recs[:-1]),
            node=_time_or_none(last["NodeList"]) if last["NodeList"] != "None assigned" else None,
            submit=_time_or_none(last["Submit"]),
            start=_time_or_none(last["Start"]),
            end=_time_or_none(last["End"]),
        )
    return out


def _query_ids(job_ids: Iterable[str]) -> tuple[list[str], set[str], set[str]]:
    """Ids to hand to sacct/squeue: array tasks of one array collapse into the array id.

    Returns (query ids, wanted exact ids, wanted whole jobs/arrays by base id).
    """
    wanted: set[str] = set()
    whole: set[str] = set()
    tasks_by_base: dict[str, set[str]] = {}
    for raw in job_ids:
        jid = str(raw).strip()
        if not jid:
            continue
        if not re.fullmatch(r"\d+(_\d+)?", jid):
            raise ValueError(f"not a SLURM job id: {jid!r} (expected '123' or '123_4')")
        if "_" in jid:
            wanted.add(jid)
            tasks_by_base.setdefault(_base(jid), set()).add(jid)
        else:
            whole.add(jid)
    query = sorted(whole, key=int)
    for base, tasks in tasks_by_base.items():
        if base in whole:
            continue
        query.extend([base] if len(tasks) > 1 else sorted(tasks))
    return query, wanted, whole


def _select(states: Mapping[str, JobState], wanted: set[str], whole: set[str]) -> dict[str, JobState]:
    return {k: v for k, v in states.items() if k in wanted or _base(k) in whole}


# ----------------------------------------------------------------------------------------- queries
def sacct_states(job_ids: Iterable[str], since: str | None = None) -> dict[str, JobState]:
    """States of `job_ids` from SLURM accounting, in one `sacct` call per 1000 ids.

    job_ids: "123" (a job, or every task of array 123) and/or "123_4" (one array task).
    since:   optional sacct start time (e.g. the sweep's creation time, "2024-05-01T12:00:00"), which
             keeps out older jobs with the same id when the controller's job ids were reset.
    Returns {job_id: JobState}; ids that accounting does not know (yet) are absent.
    Raises SlurmError if sacct fails.
    """
    query, wanted, whole = _query_ids(job_ids)
    out: dict[str, JobState] = {}
    for chunk in _chunks(query, CHUNK):
        cmd = ["sacct", "-D", "-P", "-n", "-o", ",".join(_SACCT_FIELDS), "-j", ",".join(chunk)]
        if since:
            cmd += ["-S", since]
        out.update(_parse_sacct(_run(cmd)))
    return _select(out, wanted, whole)


def squeue_states(job_ids: Iterable[str] | None = None) -> dict[str, JobState]:
    """States of queued/running jobs from the controller (one `squeue` call for all of them).

    job_ids: as for `sacct_states`; None returns every job in the queue. Finished jobs drop out of
    squeue after MinJobAge, so use `sacct_states` for them.
    """
    text = _run(["squeue", "-h", "-r", "-a", "-o", "%i|%T|%r|%N|%M"])
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        jid, state, reason, node, _elapsed = (p.strip() for p in parts)
        for task_id in _expand_job_id(jid):
            states[task_id] = JobState(
                job_id=task_id,
                state=_normalise_state(state),
                reason=None if reason in ("", "None") else reason,
                node=node or None,
                source="squeue",
            )
    if job_ids is None:
        return states
    _, wanted, whole = _query_ids(job_ids)
    return _select(states, wanted, whole)


def job_states(job_ids: Iterable[str], since: str | None = None) -> dict[str, JobState]:
    """Best current view: `sacct_states`, corrected by one `squeue` call where it lags.

    Accounting learns of a job about a second after submission and of its start a few seconds after
    it runs (sacct says PENDING meanwhile); the controller knows at once. So ids that sacct does not
    know are taken from squeue, and for jobs that sacct reports as not finished, squeue's state wins.
    """
    ids = [str(j) for j in job_ids]
    out = sacct_states(ids, since=since)
    known_bases = {_base(k) for k in out}
    missing = [j for j in ids if j not in out and j not in known_bases]
    if missing or any(not s.terminal for s in out.values()):
        for k, live in squeue_states(ids).items():
            cur = out.get(k)
            if cur is None:
                out[k] = live
            elif not cur.terminal:
                out[k] = replace(cur, state=live.state, reason=live.reason, node=live.node or cur.node)
    return out


def slurm_available(timeout: float = 10) -> bool:
    """True if the SLURM client tools are installed and the controller answers."""
    if not (shutil.which("sbatch") and shutil.which("scontrol")):
        return False
    try:
        return "UP" in _run(["scontrol", "ping"], timeout=timeout)
    except SlurmError:
        return False


@functools.cache
def site_limits() -> dict[str, int]:
    """Site limits the sweep driver must respect, from `scontrol show config` (cached per process).

    {"MaxArraySize": array indices must be < this (so at most MaxArraySize - 1 tasks as 0..N-1),
     "MaxJobCount": jobs the controller holds at once, every array task counting once it is split}
    """
    text = _run(["scontrol", "show", "config"])
    conf: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    try:
        return {"MaxArraySize": int(conf["MaxArraySize"]), "MaxJobCount": int(conf["MaxJobCount"])}
    except (KeyError, ValueError) as e:
        raise SlurmError(f"could not read MaxArraySize/MaxJobCount from `scontrol show config`: {e}") from e


@functools.cache
def partition_cpus(partition: str | None = None) -> int | None:
    """CPUs of the largest node of `partition` (None: every partition), from sinfo; None if unknown.

    A cell that asks for more CPUs on one node than any node has would pend forever
    (reason PartitionConfig), so the driver rejects it before submission.
    """
    if not shutil.which("sinfo"):
        return None
    try:
        text = _run(["sinfo", "-h", "-o", "%c", *(["-p", partition] if partition else [])], timeout=30)
    except SlurmError:
        return None
    cpus = [int(v.rstrip("+")) for v in text.split() if v.rstrip("+").isdigit()]
    return max(cpus) if cpus else None


def node_gpus(gres_field: str, gres: str = "gpu") -> int:
    """GPUs of `gres` (a name, or name:type) in one node's generic resources as sinfo prints them (%G).

    "gpu:4" -> 4; "gpu:a100:4(S:0-1),gpu:v100:2" -> 6 for "gpu", 4 for "gpu:a100"; "(null)" -> 0.
    """
    name, _, gpu_type = gres.partition(":")
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres_field).split(","):
        parts = item.strip().split(":")
        if parts[0] != name or len(parts) < 2 or not parts[-1].isdigit():
            continue
        item_type = parts[1] if len(parts) > 2 else ""
        if not gpu_type or item_type == gpu_type:
            total += int(parts[-1])
    return total


@functools.cache
def partition_gpus(partition: str | None = None, gres: str = "gpu") -> int | None:
    """GPUs (of gres name[:type]) of the best-equipped node of `partition`, from sinfo; None if unknown.

    A job asking for more GPUs on one node than any node has is refused by sbatch (or pends forever),
    possibly after other arrays of the sweep were queued; the driver rejects it before submission.
    """
    if not shutil.which("sinfo"):
        return None
    try:
        text = _run(["sinfo", "-h", "-o", "%G", *(["-p", partition] if partition else [])], timeout=30)
    except SlurmError:
        return None
    lines = [line for line in text.splitlines() if line.strip()]
    return max((node_gpus(line, gres) for line in lines), default=None)


def with_node_limits(cluster: Mapping[str, object]) -> dict:
    """A copy of a SLURM profile whose `auto` node limits are read from sinfo.

    `cpus_per_node: auto` -> the partition's largest node's CPUs; `max_gpus_per_node: auto` -> its
    GPUs of the profile's gres (`gres` name[:type], else "gpu"), read only for GPU profiles. A limit
    sinfo cannot tell becomes None (unchecked).
    """
    out = dict(cluster)
    partition = out.get("partition") or None
    if out.get("cpus_per_node") == "auto":
        out["cpus_per_node"] = partition_cpus(partition)
    if out.get("max_gpus_per_node") == "auto":
        gres = str(out.get("gres") or "gpu")
        out["max_gpus_per_node"] = partition_gpus(partition, gres) if out.get("gpus_per_node") else None
    return out
