"""The job state machine of DESIGN.md: forward-only, terminal states are final.

Pure rules only. The store applies them with a guarded UPDATE; services decide what to do with a
refused move. Replicate's prediction statuses are mapped here too, so there is one table of truth."""

from __future__ import annotations

from enum import StrEnum

from simpletuner_cloud.errors import InvalidTransition


class JobStatus(StrEnum):
    CREATED = "created"
    PACKAGING = "packaging"
    UPLOADING = "uploading"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# The happy path, in order. failed and canceled are exits reachable from any non-terminal state.
_FORWARD: tuple[JobStatus, ...] = (
    JobStatus.CREATED,
    JobStatus.PACKAGING,
    JobStatus.UPLOADING,
    JobStatus.SUBMITTING,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
)
_RANK: dict[JobStatus, int] = {status: rank for rank, status in enumerate(_FORWARD)}

TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}
)
# Every state the worker must still drive forward or reconcile (a crash may leave a job anywhere).
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL_STATUSES

_REPLICATE_STATUS: dict[str, JobStatus] = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELED,
    "aborted": JobStatus.FAILED,  # Cancel-After deadline passed before start; the raw status is kept
}


def is_terminal(status: JobStatus | str) -> bool:
    return JobStatus(status) in TERMINAL_STATUSES


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    """True when moving `current` -> `target` is legal.

    Staying in the same non-terminal state is a legal no-op (progress updates). Nothing leaves a
    terminal state, not even to itself: a repeated completion is *stale* (see `is_stale`), not a move.
    """
    current, target = JobStatus(current), JobStatus(target)
    if current in TERMINAL_STATUSES:
        return False
    if target in (JobStatus.FAILED, JobStatus.CANCELED):
        return True
    return _RANK[target] >= _RANK[current]


def is_stale(current: JobStatus | str, target: JobStatus | str) -> bool:
    """True when `target` tells nothing new: a late, duplicated or reordered event.

    Stale: the same terminal state again (a duplicate `completed` webhook), or a non-terminal state
    that the job has already passed (`processing` arriving after `succeeded`). Not stale: a different
    terminal state for a finished job (succeeded vs canceled): that is a real conflict to report.
    """
    current, target = JobStatus(current), JobStatus(target)
    if current in TERMINAL_STATUSES:
        return target == current or target not in TERMINAL_STATUSES
    if target in TERMINAL_STATUSES:
        return False
    return _RANK[target] < _RANK[current]


def transition(current: JobStatus | str, target: JobStatus | str) -> JobStatus:
    """Return the new status, or raise `InvalidTransition` (code `invalid_transition`).

    A stale move raises too; callers that must tolerate late events check `is_stale` first
    (`details["stale"]` says which kind of refusal it was)."""
    current, target = JobStatus(current), JobStatus(target)
    if can_transition(current, target):
        return target
    stale = is_stale(current, target)
    if current in TERMINAL_STATUSES:
        message = f"The job already {current.value}; it cannot become {target.value}."
    else:
        message = f"A {current.value} job cannot go back to {target.value}."
    raise InvalidTransition(
        message,
        hint="Job states only move forward; a finished job stays finished.",
        details={"from": current.value, "to": target.value, "stale": stale},
    )


def map_replicate_status(status: str | None) -> JobStatus | None:
    """Map a Replicate prediction status; None for an unknown one (keep it verbatim, keep polling)."""
    if not status:
        return None
    return _REPLICATE_STATUS.get(status.strip().lower())
