"""The worker's log reads are spaced by a time kept on the job (`logs_polled_at`), not in one server's
memory: after one server read a running job's log, another server on the same database does not read
it again before `log_poll_seconds` have passed. A poll never puts off the clean-up of a job that ended
while it ran."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from tests.support.job_server import EXAMPLE, SUBMIT, job_server
from tests.support.provider_sandbox import record_job
from tests.support.waiting import eventually_sync


def test_a_log_read_by_one_server_is_not_due_on_another() -> None:
    # Long steps: the job stays running; the first poll reads the log (never read yet), then not for 30 s.
    with job_server(steps=1000, poll_seconds=0.2, log_poll_seconds=30) as (http, app):
        app.state.sandbox_app.state.sandbox.config.step_seconds = 5.0
        submitted = http.post(SUBMIT, json=EXAMPLE)
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["job_id"]

        async def read() -> Any:  # as another server would: its own connection to the database
            database = Database(app.state.settings.effective_database_url)
            try:
                async with database.session() as session:
                    return await repo.require_job(session, job_id)
            finally:
                await database.dispose()

        def polled() -> Any:
            job = asyncio.run(read())
            return job if job.status == "running" and job.logs_polled_at is not None else None

        job = eventually_sync(polled, timeout=60, what="the first log read of the running job")
        other = JobRunner(
            app.state.settings, app.state.database, lambda: app.state.provider_runtime, EventBus()
        )
        assert other.holder != app.state.job_runner.holder  # another server's worker
        read_at = job.logs_polled_at
        assert other._logs_due(job, read_at + timedelta(seconds=5)) is False
        # Due again once the spacing has passed (30 s, or 120 s while webhooks flow, as they do here).
        assert other._logs_due(job, read_at + timedelta(seconds=121)) is True
        http.post(f"/api/cloud/jobs/{job_id}/cancel")


async def test_the_next_poll_is_not_scheduled_for_a_job_that_ended_meanwhile(db: Database) -> None:
    """A webhook finished the job while its poll ran: the poll's schedule put the clean-up off by a
    poll interval (six while webhooks flow)."""
    async with db.session() as session:
        job_id = await record_job(session, "running", started=datetime.now(UTC))
        await session.commit()
        as_the_poll_read_it = await repo.read_job(session, job_id)
        await repo.apply_status(session, job_id, "succeeded", next_poll_at=None)
        await session.commit()
    runner = JobRunner(load_settings(), db, ProviderRuntime(), EventBus())
    await runner._schedule_next(as_the_poll_read_it, datetime.now(UTC))
    async with db.session() as session:
        assert (await repo.read_job(session, job_id)).next_poll_at is None  # due for its clean-up now
