"""Tell every server on this database that a job's timeline grew. On PostgreSQL a `NOTIFY` sent in
the writer's transaction is delivered to every `LISTEN`ing replica at commit (and never for a rolled
back write); SQLite serves one process, where the in-process event bus is enough. The timeline in
`job_events` stays the truth: a lost notification only delays a listener until its next poll."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "simpletuner_job_events"


async def announce(session: AsyncSession, job_id: str) -> None:
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, :job)"), {"channel": CHANNEL, "job": job_id})


async def announce_all(session: AsyncSession, job_ids: list[str]) -> None:
    """`announce` for several jobs in one statement."""
    bind = session.bind
    if not job_ids or bind is None or bind.dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT pg_notify(:channel, job) FROM unnest(CAST(:jobs AS text[])) AS job"),
        {"channel": CHANNEL, "jobs": sorted(set(job_ids))},
    )
