"""A job's clean-up runs once: a pass that claimed the job before the clean-up was committed (the
claim treats the holder's own lease as free) finds it done and does nothing, so the timeline never
says `cleaned_up` twice and nothing is deleted again; an upload linked while the clean-up runs makes
it run again rather than being marked done."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.uploads import get_upload, record_upload
from tests.support.job_server import EXAMPLE, SUBMIT, another_worker, job_server
from tests.support.provider_sandbox import record_job
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
            async with another_worker(app) as (runner, database):
                await runner._finish(job_id)  # as a pass holding a stale claim would
                async with database.session() as session:
                    return [event.kind for event in await repo.list_events(session, job_id)]

        kinds = asyncio.run(finish_again())
        assert kinds.count("cleaned_up") == 1, kinds
        assert kinds[-1] == "cleaned_up"


async def test_an_upload_linked_while_the_clean_up_runs_is_cleaned_up_too(db: Database) -> None:
    """The clean-up found no upload, a late one was linked meanwhile (due again, `cleaned_at` unset),
    and the clean-up then wrote `cleaned_at` over it: that file stayed at Replicate until it expired."""
    now = datetime.now(UTC)
    async with db.session() as session:
        job_id = await record_job(session, "canceled", completed=now)
        upload = await record_upload(
            session, sha256="1" * 64, size=1, replicate_file_id="f_1", url="https://x", expires_at=now
        )
        await session.commit()
    runner = JobRunner(load_settings(), db, ProviderRuntime(), EventBus())
    nothing_uploaded = runner._delete_dataset

    async def while_a_late_upload_lands(job: Any) -> str | None:
        said = await nothing_uploaded(job)
        async with db.session() as session:
            await repo.link_upload(session, job_id, upload.id)
            await session.commit()
        return said

    runner._delete_dataset = while_a_late_upload_lands  # type: ignore[method-assign]
    async with db.session() as session:
        assert await repo.claim_job(session, job_id, runner.holder, 30)
        await session.commit()
    await runner._finish(job_id)
    async with db.session() as session:
        row = await repo.read_job(session, job_id)
        kinds = [event.kind for event in await repo.list_events(session, job_id)]
    assert (row.upload_id, row.cleaned_at) == (upload.id, None)  # due again: the next pass deletes it
    assert "cleaned_up" not in kinds


async def test_the_dataset_file_is_not_deleted_while_its_archive_is_being_uploaded_or_reused(
    db: Database,
) -> None:
    """A job reusing the file checks and links it under the archive's upload lock; the clean-up's
    check and delete take it too (without waiting): held, the clean-up comes back later."""
    now = datetime.now(UTC)
    async with db.session() as session:
        job_id = await record_job(session, "succeeded", completed=now)
        upload = await record_upload(
            session, sha256="3" * 64, size=1, replicate_file_id="f_3", url="https://x", expires_at=now
        )
        await repo.link_upload(session, job_id, upload.id)
        await session.commit()
        job = await repo.read_job(session, job_id)
    runner = JobRunner(load_settings(), db, ProviderRuntime(), EventBus())
    async with upload_lock(db, upload.sha256, "another job's upload", 30):
        assert await runner._delete_dataset(job) is None
    async with db.session() as session:
        assert (await get_upload(session, upload.id)).deleted_at is None  # type: ignore[union-attr]
