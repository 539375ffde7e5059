"""Cancel and delete decide on the job as it is when they write, not as they first read it: a create
marked sent in between makes the cancel say the prediction is looked up (never "no prediction was
created"), and an upload linked in between keeps the job (its file must still be deleted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.job_control import cancel_job, delete_job
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import utcnow
from simpletuner_cloud.store.uploads import record_upload
from tests.support.provider_sandbox import record_job


def after_the_first_read(
    monkeypatch: pytest.MonkeyPatch, db: Database, change: Callable[[Any], Awaitable[None]]
) -> None:
    """Another writer (the worker, an upload) commits `change` right after the first read of the job."""
    original, reads = repo.require_job, []

    async def require_job(session: Any, job_id: str) -> Any:
        job = await original(session, job_id)
        reads.append(job_id)
        if len(reads) == 1:
            async with db.session() as other:
                await change(other)
                await other.commit()
        return job

    monkeypatch.setattr(repo, "require_job", require_job)


async def test_a_create_marked_sent_after_the_cancel_read_the_job_is_looked_up(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.session() as session:
        job, _ = await repo.create_job(session, config_name="c", hardware="l40s", model="m", version="v1")
        await repo.apply_status(session, job.id, "uploading")
        await session.commit()

    async def the_worker_sends_the_create(session: Any) -> None:
        await repo.apply_status(session, job.id, "submitting", create_sent_at=utcnow(), create_attempts=1)

    after_the_first_read(monkeypatch, db, the_worker_sends_the_create)
    async with db.session() as session:
        answer = await cancel_job(session, load_settings(), ProviderRuntime(), job.id)
    assert answer.message.startswith("Cancel recorded; the prediction is being looked up")
    async with db.session() as session:
        row = await repo.read_job(session, job.id)
    assert row.status == "submitting" and row.cancel_requested_at is not None  # the worker stops it


async def test_a_job_that_ended_after_the_cancel_read_it_is_left_as_it_ended(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.session() as session:
        job_id = await record_job(session, "running", started=datetime.now(UTC))
        await session.commit()

    async def its_completed_webhook_lands(session: Any) -> None:
        await repo.apply_status(session, job_id, "succeeded", actual_cost_usd=Decimal("0.20"))

    after_the_first_read(monkeypatch, db, its_completed_webhook_lands)
    async with db.session() as session:
        answer = await cancel_job(session, load_settings(), ProviderRuntime(), job_id)
    assert (answer.message, answer.job.status) == (
        "The job already succeeded; nothing to cancel.",
        "succeeded",
    )
    async with db.session() as session:
        row = await repo.read_job(session, job_id)
        kinds = [event.kind for event in await repo.list_events(session, job_id)]
    assert row.cancel_requested_at is None and "cancel_requested" not in kinds


async def test_an_upload_linked_after_the_delete_read_the_job_keeps_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        job_id = await record_job(session, "succeeded", completed=now, cost="0.10")
        await repo.set_fields(session, job_id, cleaned_at=now)
        upload = await record_upload(
            session, sha256="0" * 64, size=1, replicate_file_id="f_1", url="https://x", expires_at=now
        )
        await session.commit()

    async def a_late_upload_lands(session: Any) -> None:
        await repo.link_upload(session, job_id, upload.id)

    after_the_first_read(monkeypatch, db, a_late_upload_lands)
    async with db.session() as session:
        with pytest.raises(CloudError) as refused:
            await delete_job(session, job_id)
    assert refused.value.code == "job_active"
    async with db.session() as session:
        row = await repo.read_job(session, job_id)
    assert (row.upload_id, row.cleaned_at) == (upload.id, None)
    assert row.next_poll_at is not None and row.next_poll_at <= utcnow() + timedelta(seconds=1)
