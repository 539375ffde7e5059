"""A job canceled while its dataset upload is on the way: the upload that completes afterwards is
still the job's, so the clean-up deletes the file at Replicate, and the timeline says only what was
done ("deleted" when a file was deleted, "no dataset file was uploaded" when none was)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.tables import JobRow, UploadRow
from tests.support.job_server import EXAMPLE, SUBMIT, job_server, sandbox
from tests.support.waiting import eventually_sync


def _cleaned(http: Any, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}").json()
    return job if any(e["kind"] == "cleaned_up" for e in job["timeline"]) else None


def test_a_job_canceled_during_its_upload_deletes_the_file_that_arrives_later() -> None:
    with job_server(steps=5) as (http, app):
        sandbox(
            http,
            "POST",
            "/faults",
            json={"slow_bodies": {"request_delay": 0.3, "route": "/v1/files", "method": "POST"}},
        )
        job_id = http.post(SUBMIT, json=EXAMPLE).json()["job_id"]
        eventually_sync(
            lambda: http.get(f"/api/cloud/jobs/{job_id}").json()["status"] == "uploading" or None,
            timeout=60,
            interval=0.01,
            what="the upload starting",
        )
        canceled = http.post(f"/api/cloud/jobs/{job_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        job = eventually_sync(lambda: _cleaned(http, job_id), timeout=60, what="the clean-up")
        assert job["status"] == "canceled"
        listed = sandbox(http, "GET", "/v1/files")["results"]
        cleaned = [e["message"] for e in job["timeline"] if e["kind"] == "cleaned_up"]
        uploads, job_upload = asyncio.run(_uploads(app, job_id))
        assert listed == [], (listed, cleaned, uploads)  # nothing left at Replicate
        assert all(deleted for _, deleted in uploads), uploads
        linked = [upload_id for upload_id, _ in uploads if upload_id == job_upload]
        if uploads:  # the file reached Replicate: the job knows it, and says it deleted it
            assert linked and cleaned == ["Dataset file deleted at Replicate; secrets removed."]
        else:
            assert cleaned == ["No dataset file was uploaded; secrets removed."]


async def _uploads(app: FastAPI, job_id: str) -> tuple[list[tuple[str, bool]], str | None]:
    """Every upload (id, deleted) and the upload the job names."""
    database = Database(app.state.settings.effective_database_url)
    try:
        async with database.session() as session:
            rows = (await session.scalars(select(UploadRow))).all()
            job = await session.get(JobRow, job_id)
            assert job is not None
            return [(row.id, row.deleted_at is not None) for row in rows], job.upload_id
    finally:
        await database.dispose()
