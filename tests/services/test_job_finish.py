"""A job's clean-up runs once: a pass that claimed the job before the clean-up was committed (the
claim treats the holder's own lease as free) finds it done and does nothing, so the timeline never
says `cleaned_up` twice and nothing is deleted again."""

from __future__ import annotations

import asyncio
from typing import Any

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from tests.support.job_server import EXAMPLE, SUBMIT, job_server
from tests.support.waiting import eventually_sync


def test_a_second_clean_up_of_a_cleaned_job_does_nothing() -> None:
    with job_server(steps=10) as (http, app):
        submitted = http.post(SUBMIT, json=EXAMPLE)
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["job_id"]

        def cleaned() -> list[Any] | None:
            kinds = [e["kind"] for e in http.get(f"/api/cloud/jobs/{job_id}").json()["timeline"]]
            return kinds if "cleaned_up" in kinds else None

        eventually_sync(cleaned, timeout=60, what="the job's clean-up")

        async def finish_again() -> list[str]:
            database, runtime = Database(app.state.settings.effective_database_url), ProviderRuntime()
            try:
                runner = JobRunner(app.state.settings, database, lambda: runtime, EventBus())
                await runner._finish(job_id)  # as a pass holding a stale claim would
                async with database.session() as session:
                    return [event.kind for event in await repo.list_events(session, job_id)]
            finally:
                await runtime.aclose()
                await database.dispose()

        kinds = asyncio.run(finish_again())
        assert kinds.count("cleaned_up") == 1, kinds
        assert kinds[-1] == "cleaned_up"
