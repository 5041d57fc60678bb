"""Job states and worker liveness: the words every part of lensbatch uses for them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's `status` column. Stored as its value ("queued", ...)."""

    QUEUED = "queued"  # stored and enqueued; no task has started
    RUNNING = "running"  # a task has claimed documents
    DONE = "done"  # every document has a result or has failed for good
    FAILED = "failed"  # the job cannot run (its model cannot load, say)
    CANCELLED = "cancelled"  # `lensbatch cancel`: workers drop its tasks

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)

# Each pool process refreshes its heartbeat this often (seconds).
HEARTBEAT_SECONDS = 5.0
# A worker whose heartbeat is older than this is lost (killed or cut off without
# shutting down): `workers` shows it as lost and progress does not count it as active.
WORKER_LIVE_SECONDS = 30.0
# `workers` leaves out a pool process whose heartbeat is older than this: one that was
# stopped, died or was lost that long ago (`workers --all` shows them).
WORKER_HIDDEN_SECONDS = 600.0
