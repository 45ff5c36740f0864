"""Status vocabularies in one place: run-record statuses, error classes, derived cell states.

The run record (rsscale/train/record_file.py) writes `status` and `error_class` from the first two;
`rsscale.launch.cell_states.derive_state` adds the cell states that only the evidence around a record
can tell (nobody has run it yet, it waits in a queue, nobody runs it any more); the sweep driver,
the status table, the tuner and the analysis loader read them all from here.
"""

from __future__ import annotations

# run-record statuses (record.json "status")
RECORD_STATUSES = ("running", "completed", "failed", "diverged", "preempted", "pruned")
# run-record error classes (record.json "error_class"; also what a SLURM end state maps to)
# storage: the file system failed the run (no permission, read-only, full; rsscale.io.is_storage_error)
ERROR_CLASSES = (
    "oom",
    "diverged",
    "timeout",
    "node_failure",
    "code_error",
    "preempted",
    "cancelled",
    "storage",
)

# cell states besides the record statuses (rsscale.launch.cell_states.derive_state):
# new (never submitted), pending (submitted, not started), requeued (back in the scheduler's queue),
# interrupted (nobody runs it; the next run resumes it)
DERIVED_STATES = ("new", "pending", "requeued", "interrupted")
CELL_STATES = DERIVED_STATES + RECORD_STATUSES

# a cell in one of these states is final: the driver stops waiting for it
TERMINAL = ("completed", "failed", "diverged")
# record statuses that may still change (someone may run, or resume, the cell); "pending" is the
# status a loader gives a cell that has no record yet
OPEN_RECORD = ("running", "preempted", "pending")
# cells the driver waits for (submitted by an earlier launch, queued or running)
WAITING = ("pending", "running", "requeued")
# cells that ended without completing: re-submitted while their error class has retries left
RETRIED = ("failed", "diverged", "preempted")
