"""Job repository: create and read jobs, apply status moves safely, keep the timeline, lease jobs.

Every status change goes through `apply_status`: the state machine of `domain.jobs` decides, and a
compare-and-set UPDATE (`WHERE id = :id AND status = :expected`) makes sure that of two writers
(webhook and poller, or two server replicas) exactly one applies a move. The worker's own writes are
also *fenced*: they name the lease token and only land while that lease is alive (`fence=`), so a
worker that lost its lease (paused, partitioned) cannot overwrite the new holder. Leases are counted in
the database's time on PostgreSQL (replicas' clocks may differ). Functions flush; callers commit."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from simpletuner_cloud.domain.jobs import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, is_stale, transition
from simpletuner_cloud.errors import NotFound
from simpletuner_cloud.security.redaction import masked_from
from simpletuner_cloud.store.database import dialect_insert
from simpletuner_cloud.store.tables import (
    JobEventRow,
    JobLogRow,
    JobMetricRow,
    JobRow,
    new_client_ref,
    new_job_id,
    utcnow,
)

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
        "upload_id",
        "spec",
        "error_hint",
        "next_poll_at",
        "create_sent_at",
        "create_attempts",
        "warnings",
        "notice",
    }
)  # logs_offset only moves forward through `append_logs`; prediction_id only once (`record_prediction_id`)
_CAS_ATTEMPTS = 5
# A job stays on one worker for this long per claim; the holder renews it while a long step runs.
DEFAULT_LEASE_SECONDS = 60.0


class LeaseLost(Exception):
    """The worker's lease on a job expired and may belong to another worker now: stop touching it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lease on {job_id} lost")
        self.job_id = job_id  # a lost race re-reads and decides again; the state machine bounds the retries


# The tables themselves, for the bulk writes: a plain executemany, cached once, no ORM bookkeeping.
_JOBS = cast(Table, JobRow.__table__)
_LOGS = cast(Table, JobLogRow.__table__)
_EVENTS = cast(Table, JobEventRow.__table__)
_METRICS = cast(Table, JobMetricRow.__table__)


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
    delivery: str = "none",
    warnings: list[str] | None = None,
    at: datetime | None = None,
) -> tuple[JobRow, bool]:
    """Insert a `created` job and its first timeline event; returns (job, created).

    A job with the same idempotency key wins over this one (`INSERT ... ON CONFLICT DO NOTHING`, so the
    caller's transaction stays usable on PostgreSQL): then the existing job is returned with False."""
    now = at or utcnow()
    new_id = job_id or new_job_id()
    values: dict[str, Any] = {
        "id": new_id,
        "client_ref": client_ref or new_client_ref(),
        "status": JobStatus.CREATED.value,
        "config_name": config_name,
        "hardware": hardware,
        "model": model,
        "version": version,
        "spec": spec or {},
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "estimated_cost_usd": estimated_cost_usd,
        "reserved_cost_usd": reserved_cost_usd,
        "upload_id": upload_id,
        "created_at": now,
        "updated_at": now,
        "next_poll_at": now,
        "logs_offset": 0,
        "create_attempts": 0,
        "delivery": delivery,
        "warnings": warnings or None,
    }
    insert = dialect_insert(session, JobRow).values(**values)
    if idempotency_key is not None:
        insert = insert.on_conflict_do_nothing(index_elements=["idempotency_key"])
    inserted = (await session.execute(insert.returning(JobRow.id))).scalar_one_or_none()
    if inserted is None:
        existing = await get_job_by_idempotency_key(session, idempotency_key or "")
        assert existing is not None, "the conflicting job is committed, so it is visible"
        return existing, False
    session.add(JobEventRow(job_id=new_id, at=now, kind="status", to_status=JobStatus.CREATED.value))
    await session.flush()
    job = await _one(session, JobRow.id == new_id, fresh=True)
    assert job is not None
    return job, True


async def get_job(session: AsyncSession, job_id: str) -> JobRow | None:
    return await _one(session, JobRow.id == job_id)


async def require_job(session: AsyncSession, job_id: str) -> JobRow:
    job = await get_job(session, job_id)
    if job is None:
        raise NotFound(
            f"No job {job_id!r}.", code="job_not_found", hint="`simpletuner cloud jobs list` shows jobs."
        )
    return job


async def read_job(session: AsyncSession, job_id: str) -> JobRow:
    """The job as the database has it now (refreshes the session's copy); NotFound when missing."""
    job = await _one(session, JobRow.id == job_id, fresh=True)
    if job is None:
        raise NotFound(f"No job {job_id!r}.", code="job_not_found")
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
    hardware: str | None = None,
    text: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[JobRow]:
    """Newest first. `before` is the id of the last job of the previous page (ids sort by time).

    Rows for the list's views: `spec` (the request and the trainer inputs, the widest column by far) is
    not loaded, and reading it raises instead of querying again; `get_job` reads a whole job."""
    query = (
        select(JobRow)
        .where(*_filters(status, hardware, text))
        .order_by(JobRow.id.desc())
        .limit(limit)
        .options(defer(JobRow.spec, raiseload=True))
    )
    if before is not None:
        query = query.where(JobRow.id < before)
    return list((await session.scalars(query)).all())


async def count_jobs(
    session: AsyncSession,
    *,
    status: JobStatus | str | Collection[JobStatus | str] | None = None,
    hardware: str | None = None,
    text: str | None = None,
) -> int:
    query = select(func.count()).select_from(JobRow).where(*_filters(status, hardware, text))
    return int((await session.execute(query)).scalar_one())


def _filters(
    status: JobStatus | str | Collection[JobStatus | str] | None, hardware: str | None, text: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if isinstance(status, str):
        conditions.append(JobRow.status == JobStatus(status).value)
    elif status is not None:
        conditions.append(JobRow.status.in_([JobStatus(s).value for s in status]))
    if hardware:
        conditions.append(JobRow.hardware == hardware)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                JobRow.id.ilike(pattern, escape="\\"),
                JobRow.config_name.ilike(pattern, escape="\\"),
                JobRow.prediction_id.ilike(pattern, escape="\\"),
            )
        )
    return conditions


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
    fence: str | None = None,
    job: JobRow | None = None,
    expect: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[JobRow, bool]:
    """Move a job to `target` and set `fields` with it; returns (job, status_changed).

    With `fence` (a lease token) the write lands only while that lease is alive; otherwise it raises
    `LeaseLost` and changes nothing. With `expect`, only while those columns hold those values (a job
    whose prediction turned up meanwhile, say): otherwise nothing is written, False. `job` is the row
    as this session last read it: it saves the read, and a stale copy costs only a retry (the
    compare-and-set misses and the row is read again). The returned row is that copy with what was
    written (no re-read).

    A stale target (duplicate or late event) changes nothing and returns False. A real conflict (a
    finished job told to finish differently) raises `InvalidTransition`. The same non-terminal
    status is a legal no-op that still writes `fields` (progress, logs_offset, ...), and writes nothing
    when they hold those values already. Entering `running` sets `started_at`, entering a terminal
    state sets `completed_at`, unless given or already set. A status change adds a `status` event
    carrying `message` and `data`."""
    unknown = set(fields) - APPLICABLE_FIELDS
    if unknown:
        raise TypeError(f"apply_status cannot set {sorted(unknown)}")
    target = JobStatus(target)
    now = at or utcnow()
    for _ in range(_CAS_ATTEMPTS):
        if job is None:
            job = await read_job(session, job_id)
        current = JobStatus(job.status)
        if is_stale(current, target) or not _holds_expected(job, expect):
            return job, False
        transition(current, target)  # raises InvalidTransition for a conflicting terminal state
        values = status_values(job, target, now, provider_status=provider_status, **fields)
        changed = target is not current
        if not changed and fence is None and holds(job, values, skip=("updated_at",)):
            return job, False  # the same status and the same fields: nothing to write
        conditions = [JobRow.id == job_id, JobRow.status == current.value, *_expected(expect)]
        if fence is not None:
            conditions.append(_lease_alive(session, fence))
        guarded = (
            update(JobRow).where(*conditions).values(**values).execution_options(synchronize_session=False)
        )
        if (await session.execute(guarded)).rowcount != 1:  # type: ignore[attr-defined]
            if fence is not None and not await holds_lease(session, job_id, fence):
                raise LeaseLost(job_id)
            job = None
            continue  # another writer moved it first: decide again on what it wrote
        remember(job, values)
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
        return job, changed
    raise RuntimeError(f"job {job_id}: status kept changing under apply_status")


def status_values(
    job: JobRow, target: JobStatus, now: datetime, *, provider_status: str | None = None, **fields: Any
) -> dict[str, Any]:
    """The columns `apply_status` writes to move `job` to `target` (or to keep it there): the status,
    `updated_at`, the provider's status word, `fields`, and `started_at` / `completed_at` on entering
    `running` / a terminal state unless given or already set."""
    values: dict[str, Any] = {"status": target.value, "updated_at": now, **fields}
    if provider_status is not None:
        values["provider_status"] = provider_status
    if target is JobStatus.RUNNING and job.started_at is None:
        values.setdefault("started_at", now)
    if target in TERMINAL_STATUSES and job.completed_at is None:
        values.setdefault("completed_at", now)
    return values


def remember(job: JobRow, values: dict[str, Any]) -> None:
    """Make the session's copy of `job` hold what an UPDATE just wrote, without reading it back."""
    for name, value in values.items():
        set_committed_value(job, name, value)


def holds(job: JobRow, values: dict[str, Any], *, skip: tuple[str, ...] = ()) -> bool:
    """The session's copy of `job` has every one of `values` already."""
    return all(getattr(job, name) == value for name, value in values.items() if name not in skip)


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
    session: AsyncSession,
    job_id: str,
    after_id: int | None = None,
    *,
    limit: int | None = None,
    exclude_kinds: Collection[str] = (),
) -> list[JobEventRow]:
    """The timeline in order; `after_id` resumes a stream (SSE `Last-Event-ID`)."""
    query = select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    if exclude_kinds:
        query = query.where(JobEventRow.kind.not_in(list(exclude_kinds)))
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
    current = _now(session, now)
    claim = (
        update(JobRow)
        .where(
            JobRow.id == job_id,
            or_(JobRow.lock_token.is_(None), JobRow.locked_until < current, JobRow.lock_token == lock_token),
        )
        .values(lock_token=lock_token, locked_until=_until(session, lease_seconds, now))
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


async def record_prediction_id(session: AsyncSession, job_id: str, prediction_id: str) -> bool:
    """Remember the prediction a job created, whatever its status: an id that arrives after a cancel
    must still be recorded, or a billed prediction would have no local record. Only once: True when
    this call set it (or it was already this id). False too when another job holds this id already
    (the unique index said so): the prediction is not this job's, and the session stays usable."""
    setting = (
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.prediction_id.is_(None))
        .values(prediction_id=prediction_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    try:
        async with session.begin_nested():
            if (await session.execute(setting)).rowcount == 1:  # type: ignore[attr-defined]
                return True
    except IntegrityError:
        return False
    job = await _one(session, JobRow.id == job_id, fresh=True)
    return job is not None and job.prediction_id == prediction_id


async def link_upload(session: AsyncSession, job_id: str, upload_id: str) -> None:
    """Tie an upload to its job the moment it exists, whatever the job's status (no status move: a
    canceled job keeps its status). A job whose clean-up already ran has it run again, so the file is
    deleted rather than left at Replicate until it expires."""
    await session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.upload_id.is_(None))
        .values(
            upload_id=upload_id,
            updated_at=utcnow(),
            next_poll_at=func.coalesce(JobRow.next_poll_at, utcnow()),
            cleaned_at=None,
        )
        .execution_options(synchronize_session=False)
    )


async def outstanding_creates(session: AsyncSession, job: JobRow) -> list[JobRow]:
    """Other jobs on the same upload and version whose create was sent and has no prediction id yet
    (in flight, or of unknown fate and still being looked for), clean-up not done. A job whose create
    inputs equal one of theirs must not send its own: the lookup could not tell the two apart."""
    query = select(JobRow).where(
        JobRow.id != job.id,
        JobRow.create_sent_at.is_not(None),
        JobRow.prediction_id.is_(None),
        JobRow.cleaned_at.is_(None),
        JobRow.upload_id.is_(None) if job.upload_id is None else JobRow.upload_id == job.upload_id,
        JobRow.version.is_(None) if job.version is None else JobRow.version == job.version,
    )
    return list((await session.scalars(query.execution_options(populate_existing=True))).all())


async def set_fields(
    session: AsyncSession,
    job_id: str,
    *,
    fence: str | None = None,
    job: JobRow | None = None,
    while_status: Collection[str] | None = None,
    expect: Mapping[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Set plain fields (no status move). With `fence`, only while that lease is alive; with
    `while_status`, only while the job's status is one of those; with `expect`, only while those
    columns hold those values (None: NULL). Each is checked in the same statement, so a job that
    moved on meanwhile is left as it is. With `job` (this session's copy of the row), the copy is
    updated with what was written."""
    conditions = [JobRow.id == job_id, *_expected(expect)]
    if fence is not None:
        conditions.append(_lease_alive(session, fence))
    if while_status is not None:
        conditions.append(JobRow.status.in_(list(while_status)))
    values.setdefault("updated_at", utcnow())
    statement = (
        update(JobRow).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    written = (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]
    if written and job is not None:
        remember(job, values)
    return written


async def note_logs_read(session: AsyncSession, job_id: str, at: datetime) -> None:
    """The job's whole log was just read from Replicate (the poll's spacing; not a change to the job,
    so `updated_at` stays)."""
    await session.execute(
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(logs_polled_at=at)
        .execution_options(synchronize_session=False)
    )


async def append_logs(
    session: AsyncSession,
    job_id: str,
    logs: str,
    *,
    job: JobRow | None = None,
    fields: Callable[[JobRow], dict[str, Any]] | None = None,
) -> str:
    """Store what `logs` (Replicate's cumulative text) adds past the stored offset, masked (the
    trainer prints its raw arguments, S3 keys included, when it refuses them: no secret it prints
    reaches the database, an answer or the live feed); returns the new text ("" when nothing is
    new). Compare-and-set on `logs_offset`, so the offset only grows and two writers never store
    the same chunk: a shorter or equal text changes nothing.

    `job` is this session's copy of the row (saves the read; a stale one costs a retry). `fields`
    computes more columns from the row the compare-and-set is made against (progress parsed from
    the logs, say): they are written in the same UPDATE, so only by the writer whose chunk lands."""
    for _ in range(_CAS_ATTEMPTS):
        if job is None:
            job = await read_job(session, job_id)
        offset = job.logs_offset
        if len(logs) <= offset:
            return ""
        chunk = masked_from(logs, offset)
        values = {"logs_offset": len(logs), **(fields(job) if fields is not None else {})}
        if not await advance_logs(session, job, offset, values):
            job = None
            continue
        await add_log_chunks(session, [(job_id, offset, chunk)])
        return chunk
    raise RuntimeError(f"job {job_id}: logs kept changing under append_logs")


async def advance_logs(session: AsyncSession, job: JobRow, offset: int, values: dict[str, Any]) -> bool:
    """The compare-and-set under `append_logs`: write `values` (the new `logs_offset` and what goes
    with it) only while the stored offset is still `offset`. False when another writer moved it."""
    moved = (
        update(JobRow)
        .where(JobRow.id == job.id, JobRow.logs_offset == offset)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if (await session.execute(moved)).rowcount != 1:  # type: ignore[attr-defined]
        return False
    remember(job, values)
    return True


async def advance_logs_together(
    session: AsyncSession, moves: list[tuple[JobRow, int, dict[str, Any]]]
) -> bool:
    """`advance_logs` for several jobs (`(job, offset, values)`), one statement per set of columns.
    False when a compare-and-set missed and the database can tell (SQLite counts the rows of an
    executemany; PostgreSQL does not, so its caller reads the rows `FOR UPDATE` first, see
    `jobs_by_prediction`): the caller then rolls back and goes one job at a time."""
    table = _JOBS
    groups: dict[tuple[str, ...], list[tuple[JobRow, int, dict[str, Any]]]] = {}
    for move in moves:
        groups.setdefault(tuple(sorted(move[2])), []).append(move)
    for names, group in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("_job"), table.c.logs_offset == bindparam("_offset"))
            .values({name: bindparam(name) for name in names})
        )
        rows = [{"_job": job.id, "_offset": offset, **values} for job, offset, values in group]
        result = await session.execute(statement, rows)
        if session.get_bind().dialect.supports_sane_multi_rowcount and result.rowcount != len(rows):  # type: ignore[attr-defined]
            return False
        for job, _, values in group:
            remember(job, values)
    return True


async def add_log_chunks(
    session: AsyncSession,
    chunks: list[tuple[str, int, str]],
    events: list[dict[str, Any]] | None = None,
) -> None:
    """Store log chunks `(job_id, offset, text)` whose offsets `advance_logs` moved past, each with
    its `logs` event, then `events` (more job events as column values) in the same statement."""
    if not chunks:
        return
    at = utcnow()
    await session.execute(
        insert(_LOGS),
        [{"job_id": job, "offset": offset, "text": text} for job, offset, text in chunks],
    )
    timeline = [
        {"job_id": job, "at": at, "kind": "logs", "data": {"offset": offset, "length": len(text)}}
        for job, offset, text in chunks
    ]
    await add_events(session, timeline + (events or []))


async def add_events(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Several job events in one statement, in list order (their ids grow with it)."""
    if not events:
        return
    columns = ("job_id", "at", "kind", "message", "data", "from_status", "to_status")
    rows = [{name: event.get(name) for name in columns} for event in events]
    await session.execute(insert(_EVENTS), rows)


async def jobs_by_prediction(session: AsyncSession, prediction_ids: list[str]) -> dict[str, JobRow]:
    """The jobs following these predictions, fresh from the database, by prediction id. On
    PostgreSQL the rows are locked for this transaction (in id order, so two writers never wait on
    each other in a circle): no other writer moves them before this one commits."""
    if not prediction_ids:
        return {}
    query = (
        select(JobRow)
        .where(JobRow.prediction_id.in_(sorted(set(prediction_ids))))
        .order_by(JobRow.id)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {job.prediction_id: job for job in (await session.scalars(query)) if job.prediction_id}


async def read_logs(session: AsyncSession, job_id: str, after: int = 0) -> str:
    """The stored logs from character `after` on."""
    query = (
        select(JobLogRow.offset, JobLogRow.text)
        .where(JobLogRow.job_id == job_id, JobLogRow.offset + func.length(JobLogRow.text) > after)
        .order_by(JobLogRow.offset)
    )
    parts = []
    for offset, text in (await session.execute(query)).all():
        parts.append(text[max(0, after - offset) :])
    return "".join(parts)


async def read_log_chunk(session: AsyncSession, job_id: str, offset: int) -> str | None:
    query = select(JobLogRow.text).where(JobLogRow.job_id == job_id, JobLogRow.offset == offset)
    return (await session.execute(query)).scalar_one_or_none()


async def record_metrics(
    session: AsyncSession, job_id: str, points: list[tuple[int, float | None, float | None]]
) -> None:
    """Upsert (step, loss, lr) readings in one statement; the latest reading of a step wins."""
    await record_readings(session, {job_id: points})


async def record_readings(
    session: AsyncSession, readings: dict[str, list[tuple[int, float | None, float | None]]]
) -> None:
    """`record_metrics` for several jobs in one statement."""
    at = utcnow()
    rows = [
        {"job_id": job_id, "step": step, "loss": loss, "learning_rate": lr, "at": at}
        for job_id, points in readings.items()
        for step, (loss, lr) in {step: (loss, lr) for step, loss, lr in points}.items()
    ]
    if not rows:
        return
    upsert = dialect_insert(session, _METRICS)
    upsert = upsert.on_conflict_do_update(
        index_elements=["job_id", "step"],
        set_={"loss": upsert.excluded.loss, "learning_rate": upsert.excluded.learning_rate},
    )
    await session.execute(upsert, rows)  # one cached statement, the rows sent as many values


async def list_metrics(session: AsyncSession, job_id: str) -> list[JobMetricRow]:
    query = select(JobMetricRow).where(JobMetricRow.job_id == job_id).order_by(JobMetricRow.step)
    return list((await session.scalars(query)).all())


async def claim_due_jobs(
    session: AsyncSession,
    holder: str,
    *,
    limit: int = 20,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> list[JobRow]:
    """Lease up to `limit` jobs that need the worker now: active ones whose `next_poll_at` has come, and
    finished ones whose clean-up has not run. On PostgreSQL the candidates are locked with
    `FOR UPDATE SKIP LOCKED`, so replicas claiming at once get disjoint batches. Commit right after."""
    current = _now(session, now)
    # Due: not cleaned up yet (an active job never is; said on its own, that term lets the claim read
    # only the partial index `ix_jobs_due`, however many finished jobs the store holds) and its
    # `next_poll_at` has come. A finished job's clean-up that must wait (a shared archive still in use,
    # a prediction still stopping) sets `next_poll_at` too, so it is not retried on every pass.
    not_cleaned = JobRow.cleaned_at.is_(None)
    due = or_(JobRow.next_poll_at.is_(None), JobRow.next_poll_at <= current)
    free = or_(JobRow.lock_token.is_(None), JobRow.locked_until < current, JobRow.lock_token == holder)
    query = (
        select(JobRow.id).where(not_cleaned, due, free).order_by(JobRow.next_poll_at, JobRow.id).limit(limit)
    )
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await session.scalars(query)).all())
    if not ids:
        return []
    until = _until(session, lease_seconds, now)
    await session.execute(
        update(JobRow)
        .where(JobRow.id.in_(ids), free)
        .values(lock_token=holder, locked_until=until)
        .execution_options(synchronize_session=False)
    )
    query_claimed = select(JobRow).where(JobRow.id.in_(ids), JobRow.lock_token == holder)
    return list((await session.scalars(query_claimed.execution_options(populate_existing=True))).all())


async def holds_lease(session: AsyncSession, job_id: str, holder: str) -> bool:
    query = select(JobRow.id).where(JobRow.id == job_id, _lease_alive(session, holder))
    return (await session.execute(query)).scalar_one_or_none() is not None


def _now(session: AsyncSession, now: datetime | None) -> Any:
    """The database's clock on PostgreSQL (one clock for every replica), ours on SQLite (one machine)."""
    if now is not None:
        return now
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return func.now()
    return utcnow()


def _until(session: AsyncSession, seconds: float, now: datetime | None) -> Any:
    if now is not None:
        return now + timedelta(seconds=seconds)
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, literal(float(seconds)))
    return utcnow() + timedelta(seconds=seconds)


def _lease_alive(session: AsyncSession, holder: str) -> ColumnElement[bool]:
    return and_(JobRow.lock_token == holder, JobRow.locked_until > _now(session, None))


def _expected(expect: Mapping[str, Any] | None) -> list[Any]:
    """`expect` (column name to value, None meaning NULL) as WHERE conditions."""
    columns = JobRow.__table__.c
    return [
        columns[name].is_(None) if value is None else columns[name] == value
        for name, value in (expect or {}).items()
    ]


def _holds_expected(job: JobRow, expect: Mapping[str, Any] | None) -> bool:
    return all(getattr(job, name) == value for name, value in (expect or {}).items())


async def _one(session: AsyncSession, criterion: Any, *, fresh: bool = False) -> JobRow | None:
    query = select(JobRow).where(criterion)
    if fresh:
        query = query.execution_options(populate_existing=True)
    return (await session.scalars(query)).one_or_none()


def _with_provider_status(data: dict[str, Any] | None, provider_status: str | None) -> dict[str, Any] | None:
    if provider_status is None:
        return data
    return {**(data or {}), "provider_status": provider_status}
