"""Job repository: create and read jobs, apply status moves safely, keep the timeline, lease jobs.

Every status change goes through `apply_status`: the state machine of `domain.jobs` decides, and a
compare-and-set UPDATE (`WHERE id = :id AND status = :expected`) makes sure that of two writers
(webhook and poller, or two server replicas) exactly one applies a move. Functions flush; callers
commit."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, is_stale, transition
from simpletuner_cloud.errors import NotFound
from simpletuner_cloud.store.tables import JobEventRow, JobRow, new_client_ref, new_job_id, utcnow

# Columns `apply_status` may set alongside a status; identity, status and lease columns are excluded.
APPLICABLE_FIELDS = frozenset(
    {
        "prediction_id",
        "version",
        "submitted_at",
        "started_at",
        "completed_at",
        "estimated_cost_usd",
        "actual_cost_usd",
        "reserved_cost_usd",
        "error_code",
        "error",
        "output",
        "progress",
        "logs_offset",
        "upload_id",
        "spec",
    }
)
_CAS_ATTEMPTS = 5  # a lost race re-reads and decides again; the state machine bounds the retries


async def create_job(
    session: AsyncSession,
    *,
    config_name: str,
    hardware: str,
    model: str,
    version: str | None = None,
    spec: dict[str, Any] | None = None,
    job_id: str | None = None,
    client_ref: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    estimated_cost_usd: Decimal | None = None,
    reserved_cost_usd: Decimal | None = None,
    upload_id: str | None = None,
    at: datetime | None = None,
) -> JobRow:
    """Insert a `created` job and its first timeline event. A duplicate idempotency key raises
    `sqlalchemy.exc.IntegrityError` at flush: roll back, then load the job by its key."""
    now = at or utcnow()
    job = JobRow(
        id=job_id or new_job_id(),
        client_ref=client_ref or new_client_ref(),
        status=JobStatus.CREATED.value,
        config_name=config_name,
        hardware=hardware,
        model=model,
        version=version,
        spec=spec or {},
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        estimated_cost_usd=estimated_cost_usd,
        reserved_cost_usd=reserved_cost_usd,
        upload_id=upload_id,
        created_at=now,
        updated_at=now,
        logs_offset=0,
    )
    session.add(job)
    await session.flush()  # the row first: events reference it and rows have no ORM relationship
    session.add(JobEventRow(job_id=job.id, at=now, kind="status", to_status=JobStatus.CREATED.value))
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: str) -> JobRow | None:
    return await _one(session, JobRow.id == job_id)


async def require_job(session: AsyncSession, job_id: str) -> JobRow:
    job = await get_job(session, job_id)
    if job is None:
        raise NotFound(
            f"No job {job_id!r}.", code="job_not_found", hint="`simpletuner cloud list` shows jobs."
        )
    return job


async def get_job_by_prediction_id(session: AsyncSession, prediction_id: str) -> JobRow | None:
    return await _one(session, JobRow.prediction_id == prediction_id)


async def get_job_by_client_ref(session: AsyncSession, client_ref: str) -> JobRow | None:
    return await _one(session, JobRow.client_ref == client_ref)


async def get_job_by_idempotency_key(session: AsyncSession, idempotency_key: str) -> JobRow | None:
    return await _one(session, JobRow.idempotency_key == idempotency_key)


async def list_jobs(
    session: AsyncSession,
    *,
    status: JobStatus | str | Collection[JobStatus | str] | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[JobRow]:
    """Newest first. `before` is the id of the last job of the previous page (ids sort by time)."""
    query = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
    if isinstance(status, str):
        query = query.where(JobRow.status == JobStatus(status).value)
    elif status is not None:
        query = query.where(JobRow.status.in_([JobStatus(s).value for s in status]))
    if before is not None:
        query = query.where(JobRow.id < before)
    return list((await session.scalars(query)).all())


async def list_active_jobs(session: AsyncSession) -> list[JobRow]:
    """Every non-terminal job, oldest first: what the worker must resume or reconcile."""
    query = select(JobRow).where(JobRow.status.in_([s.value for s in ACTIVE_STATUSES])).order_by(JobRow.id)
    return list((await session.scalars(query)).all())


async def apply_status(
    session: AsyncSession,
    job_id: str,
    target: JobStatus | str,
    *,
    provider_status: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    **fields: Any,
) -> tuple[JobRow, bool]:
    """Move a job to `target` and set `fields` with it; returns (job, status_changed).

    A stale target (duplicate or late event) changes nothing and returns False. A real conflict (a
    finished job told to finish differently) raises `InvalidTransition`. The same non-terminal
    status is a legal no-op that still writes `fields` (progress, logs_offset, ...). Entering
    `running` sets `started_at`, entering a terminal state sets `completed_at`, unless given or
    already set. A status change adds a `status` event carrying `message` and `data`."""
    unknown = set(fields) - APPLICABLE_FIELDS
    if unknown:
        raise TypeError(f"apply_status cannot set {sorted(unknown)}")
    target = JobStatus(target)
    now = at or utcnow()
    for _ in range(_CAS_ATTEMPTS):
        job = await _one(session, JobRow.id == job_id, fresh=True)
        if job is None:
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        current = JobStatus(job.status)
        if is_stale(current, target):
            return job, False
        transition(current, target)  # raises InvalidTransition for a conflicting terminal state
        values: dict[str, Any] = {"status": target.value, "updated_at": now, **fields}
        if provider_status is not None:
            values["provider_status"] = provider_status
        if target is JobStatus.RUNNING and job.started_at is None:
            values.setdefault("started_at", now)
        if target in TERMINAL_STATUSES and job.completed_at is None:
            values.setdefault("completed_at", now)
        guarded = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == current.value)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if (await session.execute(guarded)).rowcount != 1:  # type: ignore[attr-defined]
            continue  # another writer moved it first: decide again on what it wrote
        changed = target is not current
        if changed:
            session.add(
                JobEventRow(
                    job_id=job_id,
                    at=now,
                    kind="status",
                    from_status=current.value,
                    to_status=target.value,
                    message=message,
                    data=_with_provider_status(data, provider_status),
                )
            )
            await session.flush()
        refreshed = await _one(session, JobRow.id == job_id, fresh=True)
        assert refreshed is not None
        return refreshed, changed
    raise RuntimeError(f"job {job_id}: status kept changing under apply_status")


async def add_event(
    session: AsyncSession,
    job_id: str,
    kind: str,
    *,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    at: datetime | None = None,
) -> JobEventRow:
    event = JobEventRow(
        job_id=job_id,
        at=at or utcnow(),
        kind=kind,
        message=message,
        data=data,
        from_status=from_status,
        to_status=to_status,
    )
    session.add(event)
    await session.flush()
    return event


async def list_events(
    session: AsyncSession, job_id: str, after_id: int | None = None, *, limit: int | None = None
) -> list[JobEventRow]:
    """The timeline in order; `after_id` resumes a stream (SSE `Last-Event-ID`)."""
    query = select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    if after_id is not None:
        query = query.where(JobEventRow.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.scalars(query)).all())


async def claim_job(
    session: AsyncSession, job_id: str, lock_token: str, lease_seconds: float, *, now: datetime | None = None
) -> bool:
    """Lease a job to one worker. Succeeds when unlocked, when the lease expired, or to renew the
    caller's own lease; False when another holder's lease is still running."""
    now = now or utcnow()
    claim = (
        update(JobRow)
        .where(
            JobRow.id == job_id,
            or_(JobRow.lock_token.is_(None), JobRow.locked_until < now, JobRow.lock_token == lock_token),
        )
        .values(lock_token=lock_token, locked_until=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(claim)).rowcount == 1  # type: ignore[attr-defined]


async def release_job(session: AsyncSession, job_id: str, lock_token: str) -> bool:
    """Give the lease back; False when it was no longer ours (expired and taken over)."""
    release = (
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.lock_token == lock_token)
        .values(lock_token=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(release)).rowcount == 1  # type: ignore[attr-defined]


async def _one(session: AsyncSession, criterion: Any, *, fresh: bool = False) -> JobRow | None:
    query = select(JobRow).where(criterion)
    if fresh:
        query = query.execution_options(populate_existing=True)
    return (await session.scalars(query)).one_or_none()


def _with_provider_status(data: dict[str, Any] | None, provider_status: str | None) -> dict[str, Any] | None:
    if provider_status is None:
        return data
    return {**(data or {}), "provider_status": provider_status}
