"""The live feed behind `GET /api/cloud/events`: job status, progress, log lines and upload progress
as Server-Sent Events, read from the `job_events` table (never from in-process state), so any
server on the database can serve any client, and `Last-Event-ID` resumes exactly where a dropped
connection stopped. The event bus only shortens the wait; the table is the truth.

PostgreSQL hands out ids in an order that differs from commit order: id 924 may commit after 925.
The feed therefore moves only over ids it knows are settled (its horizon, see `settled_through`),
never past a gap that an open transaction may still fill."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import JobEventRow, JobRow, utcnow

BATCH = 200
IDLE_POLL = 1.0  # seconds between reads when nothing woke the stream (changes from other replicas)
GAP_POLL = 0.2  # seconds between reads while a gap holds the horizon back (its commit, or its expiry)
# A missing id older than this is taken as never coming (rolled back, a savepoint rolled back, a
# deleted job's events, a sequence jump after a crash). Transactions that add events do database work
# only (steps commit before their side effects), well under a second; this leaves a wide margin.
SETTLE_SECONDS = 20.0
SCAN = 1000  # ids (and their `at`) read per horizon step
EVENT_NAMES = {"status": "status", "progress": "progress", "logs": "log", "upload_progress": "upload"}
MAX_EVENT_ID = 2**63 - 1  # the largest id either database stores; a larger one cannot be compared


def event_id(text: str | None) -> int | None:
    """A `Last-Event-ID` as an event id, or None for one that cannot be (`abc`, `²`, past 2**63-1)."""
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()):  # str.isdigit alone takes `²`, which int() refuses
        return None
    number = int(value)
    return number if number <= MAX_EVENT_ID else None


async def settled_through(
    session: AsyncSession, position: int, *, cutoff: datetime | None
) -> tuple[int, bool]:
    """The highest id up to which every id after `position` is settled (committed or never coming),
    and whether a gap holds it back. Any job's ids count: a gap is a gap whoever's event fills it.

    A missing id was handed out before the next present one, so once a row after the gap was written
    before `cutoff`, the gap's transaction has been open longer than anything that adds events: it
    is taken as rolled back. `cutoff` None (SQLite: one writer, ids handed out and committed in
    order) settles every id below the highest one."""
    ids = select(JobEventRow.id).where(JobEventRow.id > position)
    if cutoff is None:
        highest = (
            await session.execute(select(func.max(JobEventRow.id)).where(JobEventRow.id > position))
        ).scalar()
        return (position if highest is None else int(highest)), False
    old = (
        await session.execute(
            select(func.max(JobEventRow.id)).where(JobEventRow.id > position, JobEventRow.at < cutoff)
        )
    ).scalar()
    horizon = position if old is None else int(old)  # every gap below an old row is settled
    following = (
        await session.scalars(ids.where(JobEventRow.id > horizon).order_by(JobEventRow.id).limit(SCAN))
    ).all()
    for next_id in following:
        if next_id != horizon + 1:
            return horizon, True  # a recent gap: its transaction may still commit
        horizon = next_id
    return horizon, False


def _cutoff(database: Database, clock: Callable[[], datetime], settle: float) -> datetime | None:
    return None if database.dialect == "sqlite" else clock() - timedelta(seconds=settle)


async def start_position(database: Database, job_id: str | None, last_event_id: str | None) -> int:
    """Where a stream starts: after `Last-Event-ID`; for one job, its whole timeline; for all
    jobs, from now on. Raises `job_not_found` for an unknown job before the stream starts."""
    async with database.session() as session:
        if job_id is not None:
            await repo.require_job(session, job_id)
        resume = event_id(last_event_id)
        if resume is not None:
            return resume
        if job_id is not None:
            return 0
        # From now on means from the horizon, not the highest id: an id below it may still commit.
        recent = select(JobEventRow.id).order_by(JobEventRow.id.desc()).limit(SCAN).subquery()
        lowest = (await session.execute(select(func.min(recent.c.id)))).scalar()
        base = 0 if lowest is None else int(lowest) - 1
        horizon, _ = await settled_through(session, base, cutoff=_cutoff(database, utcnow, SETTLE_SECONDS))
        return horizon


async def job_events(
    database: Database,
    bus: EventBus,
    *,
    job_id: str | None,
    after: int,
    once: bool = False,
    clock: Callable[[], datetime] = utcnow,
    settle: float = SETTLE_SECONDS,
) -> AsyncIterator[dict[str, Any]]:
    """SSE messages (`id`, `event`, `data`), in id order, each id once. `once` stops after the
    settled backlog (tests, `curl`); what a gap holds back comes on resuming after the last id."""
    position = horizon = after
    while True:
        held = False
        async with database.session() as session:
            if position >= horizon:
                horizon, held = await settled_through(
                    session, position, cutoff=_cutoff(database, clock, settle)
                )
            query = select(JobEventRow, JobRow.status).join(JobRow, JobRow.id == JobEventRow.job_id)
            query = query.where(JobEventRow.id > position, JobEventRow.id <= horizon)
            if job_id is not None:
                query = query.where(JobEventRow.job_id == job_id)
            rows = (await session.execute(query.order_by(JobEventRow.id).limit(BATCH))).all()
            messages = [await _message(session, event, status) for event, status in rows]
        for message in messages:
            yield message
        moved = position < horizon
        # A full batch may leave more below the horizon; otherwise every event up to it was sent.
        position = rows[-1][0].id if len(rows) == BATCH else horizon
        if moved:
            continue
        if once:
            return
        await bus.wait(GAP_POLL if held else IDLE_POLL)


async def _message(session: Any, event: JobEventRow, job_status: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": event.job_id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "job_status": job_status,
    }
    if event.kind == "logs":
        offset = int((event.data or {}).get("offset", 0))
        data |= {"offset": offset, "text": await repo.read_log_chunk(session, event.job_id, offset) or ""}
    else:
        data |= {
            "from_status": event.from_status,
            "to_status": event.to_status,
            "message": event.message,
            "data": event.data,
        }
    return {"id": str(event.id), "event": EVENT_NAMES.get(event.kind, "event"), "data": json.dumps(data)}
