"""rsscale.launch.slurm against the real local SLURM cluster (scripts/slurm_up.sh), plus parser unit tests.

The cluster tests submit with plain `sbatch` and check what the batched query layer reports.
Whole file: about 2 minutes, most of it the 1-minute time-limit test (SLURM enforces limits on a
30 s timer, so a 1-minute job ends 60-90 s after it starts).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from rsscale.launch import slurm
from rsscale.launch.slurm import JobState, classify, sacct_states

# ------------------------------------------------------------------------------------------ helpers


def sbatch(tmp_path: Path, *args: str) -> str:
    """Submit with plain sbatch; return the job id."""
    out = subprocess.run(
        ["sbatch", "--parsable", "-p", "debug", "-c", "1", "--mem=100M", "-o", str(tmp_path / "%x-%A_%a.out")]
        + list(args),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().split(";")[0]


def wait_for(job_ids: list[str], done, timeout: float) -> dict[str, JobState]:
    """Poll sacct_states (one call per poll) until done(states) or timeout."""
    deadline = time.monotonic() + timeout
    states: dict[str, JobState] = {}
    while time.monotonic() < deadline:
        states = sacct_states(job_ids)
        if done(states):
            return states
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s; last states: {states}")


def all_terminal(n: int):
    return lambda st: len(st) == n and all(s.terminal for s in st.values())


def running(job_id: str):
    return lambda st: job_id in st and st[job_id].state == "RUNNING"


# ---------------------------------------------------------------------------------- cluster tests


@pytest.mark.slurm
def test_slurm_available_and_site_limits(slurm_cluster):
    assert slurm.slurm_available()
    limits = slurm.site_limits()
    assert limits == {"MaxArraySize": 1001, "MaxJobCount": 20000}


@pytest.mark.slurm
def test_array_completed_in_one_sacct_call(slurm_cluster, tmp_path, monkeypatch):
    arr = sbatch(tmp_path, "--array=0-3%2", "-J", "arr", "--wrap", "sleep 1")
    single = sbatch(tmp_path, "-J", "one", "--wrap", "true")
    tasks = [f"{arr}_{i}" for i in range(4)]
    wait_for([*tasks, single], all_terminal(5), timeout=60)

    calls: list[list[str]] = []
    real_run = slurm._run
    monkeypatch.setattr(slurm, "_run", lambda cmd, **kw: calls.append(cmd) or real_run(cmd, **kw))
    states = sacct_states([*tasks, single])
    assert [c[0] for c in calls] == ["sacct"]  # one call for all five jobs
    assert set(states) == {*tasks, single}
    for st in states.values():
        assert st.state == "COMPLETED", st
        assert st.exit_code == 0 and st.restarts == 0 and classify(st) is None
        assert st.elapsed_s is not None and st.start and st.end
    # the plain array id expands to every task
    assert set(sacct_states([arr])) == set(tasks)
    assert (tmp_path / f"arr-{arr}_3.out").exists()


@pytest.mark.slurm
def test_failed_and_cancelled_jobs_are_classified(slurm_cluster, tmp_path):
    failing = sbatch(tmp_path, "-J", "fail", "--wrap", "exit 3")
    victim = sbatch(tmp_path, "-J", "victim", "--wrap", "sleep 300")
    held = sbatch(tmp_path, "-J", "held", "--hold", "--wrap", "true")
    # a held job is PENDING in the queue (and in accounting)
    q = slurm.squeue_states([held])
    assert q[held].state == "PENDING" and q[held].source == "squeue" and q[held].reason
    wait_for([victim], running(victim), timeout=60)
    subprocess.run(["scancel", victim, held], check=True, timeout=60)

    states = wait_for([failing, victim, held], all_terminal(3), timeout=60)
    assert states[failing].state == "FAILED" and states[failing].exit_code == 3
    assert classify(states[failing]) == "code_error" == states[failing].error_class
    assert states[victim].state == "CANCELLED" and classify(states[victim]) == "cancelled"
    assert states[held].state == "CANCELLED" and classify(states[held]) == "cancelled"
    assert slurm.job_states([failing])[failing].state == "FAILED"


@pytest.mark.slurm
@pytest.mark.slow
def test_requeued_job_reports_latest_run_and_restarts(slurm_cluster, tmp_path):
    job = sbatch(tmp_path, "-J", "requeue", "--wrap", "sleep 300")
    wait_for([job], running(job), timeout=60)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    # the requeued job waits AuthInfo=cred_expire (10 s) plus a scheduler pass before it runs again
    rerun = wait_for([job], lambda s: job in s and s[job].restarts == 1 and s[job].state == "RUNNING", 90)
    assert rerun[job].previous == ("REQUEUED",)
    subprocess.run(["scancel", job], check=True, timeout=60)
    st = wait_for([job], all_terminal(1), timeout=60)
    assert st[job].state == "CANCELLED" and st[job].restarts == 1


@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit_is_timeout(slurm_cluster, tmp_path):
    job = sbatch(tmp_path, "-J", "slowpoke", "-t", "1", "--wrap", "sleep 300")
    states = wait_for([job], all_terminal(1), timeout=150)
    assert states[job].state == "TIMEOUT"
    assert classify(states[job]) == "timeout"
    assert 60 <= states[job].elapsed_s < 120


@pytest.mark.slurm
def test_unknown_ids_are_absent_and_bad_ids_rejected(slurm_cluster):
    assert sacct_states(["987654321"]) == {}
    assert sacct_states([]) == {}
    with pytest.raises(ValueError):
        sacct_states(["12; rm -rf /"])


# ------------------------------------------------------------------------------ parser unit tests
# (no cluster needed)

SACCT_TEXT = """\
17|17|REQUEUED|0:0|11|2026-11-28T04:25:57|2026-11-28T04:25:57|2026-11-28T04:26:08|localhost
17.batch|17.batch|CANCELLED|0:15|11|2026-11-28T04:25:57|2026-11-28T04:25:57|2026-11-28T04:26:08|localhost
17|17|COMPLETED|0:0|1|2026-11-28T04:26:08|2026-11-28T04:26:19|2026-11-28T04:26:20|localhost
17.batch|17.batch|COMPLETED|0:0|1|2026-11-28T04:26:08|2026-11-28T04:26:19|2026-11-28T04:26:20|localhost
30_0|31|FAILED|1:0|5|2026-11-28T05:00:00|2026-11-28T05:00:01|2026-11-28T05:00:06|localhost
30_0.batch|31.batch|OUT_OF_MEMORY|0:125|5|2026-11-28T05:00:00|2026-11-28T05:00:01|2026-11-28T05:00:06|localhost
30_1|32|CANCELLED by 0|0:15|0|2026-11-28T05:00:00|None|2026-11-28T05:00:02|None assigned
30_[2-4%2]|30|PENDING|0:0|0|2026-11-28T05:00:00|Unknown|Unknown|None assigned
"""


def test_parse_sacct_requeue_array_oom_pending():
    st = slurm._parse_sacct(SACCT_TEXT)
    assert set(st) == {"17", "30_0", "30_1", "30_2", "30_3", "30_4"}
    assert st["17"].state == "COMPLETED" and st["17"].restarts == 1 and st["17"].previous == ("REQUEUED",)
    assert st["17"].elapsed_s == 1 and st["17"].node == "localhost"
    assert st["30_0"].state == "OUT_OF_MEMORY" and classify(st["30_0"]) == "oom"
    assert st["30_1"].state == "CANCELLED" and st["30_1"].signal == 15 and st["30_1"].node is None
    assert st["30_1"].start is None
    assert all(st[f"30_{i}"].state == "PENDING" and st[f"30_{i}"].active for i in (2, 3, 4))


def test_expand_and_query_ids():
    assert slurm._expand_job_id("5_[1,3,5-7%2]") == ["5_1", "5_3", "5_5", "5_6", "5_7"]
    assert slurm._expand_job_id("5_2") == ["5_2"]
    query, wanted, whole = slurm._query_ids(["9", "7_1", "7_2", "8_0"])
    assert sorted(query) == ["7", "8_0", "9"] and wanted == {"7_1", "7_2", "8_0"} and whole == {"9"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("COMPLETED", None),
        ("RUNNING", None),
        ("PENDING", None),
        ("REQUEUED", None),
        ("FAILED", "code_error"),
        ("CANCELLED by 1000", "cancelled"),
        ("TIMEOUT", "timeout"),
        ("NODE_FAIL", "node_failure"),
        ("PREEMPTED", "preempted"),
        ("OUT_OF_MEMORY", "oom"),
    ],
)
def test_classify(state, expected):
    assert classify(state) == expected
