"""The live feed behind `GET /api/cloud/events`: job status, progress, log lines and upload progress
as Server-Sent Events, read from the `job_events` table (never from in-process state), so any
server on the database can serve any client, and `Last-Event-ID` resumes exactly where a dropped
connection stopped. The event bus only shortens the wait; the table is the truth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import JobEventRow, JobRow

BATCH = 200
IDLE_POLL = 1.0  # seconds between reads when nothing woke the stream (changes from other replicas)
EVENT_NAMES = {"status": "status", "progress": "progress", "logs": "log", "upload_progress": "upload"}
MAX_EVENT_ID = 2**63 - 1  # the largest id either database stores; a larger one cannot be compared


def event_id(text: str | None) -> int | None:
    """A `Last-Event-ID` as an event id, or None for one that cannot be (`abc`, `²`, past 2**63-1)."""
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()):  # str.isdigit alone takes `²`, which int() refuses
        return None
    number = int(value)
    return number if number <= MAX_EVENT_ID else None


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
        return int((await session.execute(select(func.coalesce(func.max(JobEventRow.id), 0)))).scalar_one())


async def job_events(
    database: Database, bus: EventBus, *, job_id: str | None, after: int, once: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """SSE messages (`id`, `event`, `data`). `once` stops after the backlog (tests, `curl`)."""
    position = after
    while True:
        async with database.session() as session:
            query = select(JobEventRow, JobRow.status).join(JobRow, JobRow.id == JobEventRow.job_id)
            query = query.where(JobEventRow.id > position).order_by(JobEventRow.id).limit(BATCH)
            if job_id is not None:
                query = query.where(JobEventRow.job_id == job_id)
            rows = (await session.execute(query)).all()
            messages = [await _message(session, event, status) for event, status in rows]
        for message in messages:
            yield message
        if rows:
            position = rows[-1][0].id
            continue
        if once:
            return
        await bus.wait(IDLE_POLL)


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
