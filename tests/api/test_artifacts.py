"""`/api/cloud/jobs/{id}/artifacts`: what is where when a delivery failed (with the retention
countdown), a job without a destination, downloads and their refusals (unknown names, files gone
from the disk, callers who are not the local user), and a check on demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from simpletuner_cloud.services.artifacts import job_artifacts
from simpletuner_cloud.storage.objects import ObjectStore
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store.jobs import apply_status, create_job
from tests.api.conftest import remote_client

ENDED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HINT = "Give these keys read, write and delete rights on my-loras. Then retry the check."


async def job(app: FastAPI, destination: str, *, state: str = "pending", **delivery: Any) -> str:
    async with app.state.database.session() as session:
        row, _ = await create_job(session, config_name="c", hardware="l40s", model="m", delivery=destination)
        await apply_status(session, row.id, "running", next_poll_at=datetime.now(UTC) + timedelta(days=1))
        await apply_status(session, row.id, "succeeded", at=ENDED, completed_at=ENDED)
        if destination != "none":
            target = {"bucket": "my-loras", "prefix": f"loras/{row.id}"}
            [created] = await ledger.create_deliveries(session, row.id, [(destination, target)])
            delivery.setdefault("next_check_at", None)
            await ledger.update_delivery(session, created.id, state=state, **delivery)
        await session.commit()
        return row.id


async def test_a_check_to_be_made_again_is_said_once(app: FastAPI) -> None:
    """Said by the message when the reason does not say it already (the Hub unreachable's hint does)."""
    again = ENDED + timedelta(minutes=5)
    quiet = await job(app, "s3", state="failed", reason_code="s3_refused", reason="Denied.", hint=HINT,
                      attempts=1, next_check_at=again)  # fmt: skip
    hub_hint = "It is checked again later; the trainer pushes to the Hub on its own."
    hub = await job(app, "hub", state="failed", reason_code="hub_unreachable", reason="The Hub is down.",
                    hint=hub_hint, attempts=1, next_check_at=again)  # fmt: skip
    async with app.state.database.session() as session:
        s3_message = (await job_artifacts(session, quiet, now=ENDED)).message
        hub_message = (await job_artifacts(session, hub, now=ENDED)).message
    assert (
        s3_message.count("checked again later") == 1
        and "Then retry the check. It is checked again" in s3_message
    )
    assert hub_message.count("checked again later") == 1, hub_message


async def test_a_failed_delivery_says_what_is_where_and_how_long_replicate_keeps_the_rest(
    app: FastAPI,
) -> None:
    job_id = await job(
        app,
        "s3",
        state="failed",
        reason_code="s3_refused",
        reason="Listing s3://my-loras/loras/x/ failed: AccessDenied: Access Denied",
        hint=HINT,
        attempts=1,
    )
    async with app.state.database.session() as session:
        answer = await job_artifacts(session, job_id, now=ENDED + timedelta(minutes=17, seconds=30))
    assert answer.model_dump(mode="json") == {
        "job_id": job_id,
        "job_status": "succeeded",
        "message": f"s3://my-loras/loras/{job_id}/: failed. Listing s3://my-loras/loras/x/ failed: "
        "AccessDenied: Access Denied. Give these keys read, write and delete rights on my-loras. Then retry "
        "the check. "
        "Replicate keeps the prediction's output and logs until 10:00 UTC (in 42 min); the logs are also "
        "kept by this server.",
        "deliveries": [
            {
                "destination": "s3",
                "state": "failed",
                "target": {"bucket": "my-loras", "prefix": f"loras/{job_id}"},
                "reason": {
                    "code": "s3_refused",
                    "message": "Listing s3://my-loras/loras/x/ failed: AccessDenied: Access Denied",
                    "hint": HINT,
                },
                "attempts": 1,
                "next_check_at": None,
                "received_at": None,
                "delivered_at": None,
                "verified_at": None,
                "files": 0,
                "bytes": 0,
            }
        ],
        "artifacts": [],
        "validation_samples": [],
        "caches": {"files": 0, "bytes": 0},
        "retention": {"ends_at": "2026-12-01T10:00:00Z", "seconds_left": 2550, "passed": False},
    }
    async with app.state.database.session() as session:
        later = await job_artifacts(session, job_id, now=ENDED + timedelta(hours=2))
    assert later.retention.passed is True and later.retention.seconds_left == 0
    assert later.message.endswith(
        "Replicate's retention has passed: the prediction's inputs, output and logs are gone there; what "
        "is listed here (and the logs kept by this server) is what remains."
    )


async def test_a_job_without_a_destination_and_an_unknown_job(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    job_id = await job(app, "none")
    answer = (await client.get(f"/api/cloud/jobs/{job_id}/artifacts")).json()
    assert (answer["message"], answer["deliveries"], answer["artifacts"]) == (
        'Delivery "none": the trained weights were not kept.',
        [],
        [],
    )
    missing = await client.get("/api/cloud/jobs/job_0000000000000000000a/artifacts")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


async def test_downloads_serve_the_file_and_refuse_what_is_not_there(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    job_id = await job(app, "local", state="verified")
    settings = app.state.settings
    store = ObjectStore(settings.outputs_dir)
    incoming = store.begin()
    incoming.write(b"weights")
    stored = store.commit(incoming, f"{job_id}/run/checkpoint-10/pytorch_lora_weights.safetensors")
    async with app.state.database.session() as session:
        [row] = await ledger.list_deliveries(session, job_id)
        await ledger.record_artifact(
            session, row.id, job_id, "run/checkpoint-10/pytorch_lora_weights.safetensors", kind="checkpoint",
            step=10, size=7, sha256=stored.sha256, etag=stored.etag, location=str(stored.path),
        )  # fmt: skip
        await session.commit()
    url = f"/api/cloud/jobs/{job_id}/artifacts/run/checkpoint-10/pytorch_lora_weights.safetensors"
    served = await client.get(url)
    assert served.status_code == 200 and served.content == b"weights"
    assert served.headers["content-disposition"] == 'attachment; filename="pytorch_lora_weights.safetensors"'
    assert (await client.get(url, params={"destination": "hub"})).json()["error"][
        "code"
    ] == "artifact_not_found"
    unknown = await client.get(f"/api/cloud/jobs/{job_id}/artifacts/nope.bin")
    assert unknown.status_code == 404 and unknown.json()["error"] == {
        "code": "artifact_not_found",
        "message": f"Job {job_id} has no artifact 'nope.bin'.",
        "hint": f"GET /api/cloud/jobs/{job_id}/artifacts lists its files.",
    }
    async with remote_client(app) as outsider:
        refused = await outsider.get(url)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    stored.path.unlink()
    gone = await client.get(url)
    assert gone.status_code == 502 and gone.json()["error"]["code"] == "artifact_unavailable"


async def test_a_check_on_demand(client: httpx.AsyncClient, app: FastAPI) -> None:
    failed = await job(app, "s3", state="failed", reason_code="s3_refused", reason="r", hint="h", attempts=4)
    answer = await client.post(f"/api/cloud/jobs/{failed}/deliveries/s3/retry")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["attempts"], body["reason"]["code"]) == ("failed", 0, "s3_refused")
    assert body["next_check_at"] is not None
    waiting = await job(app, "local")
    refused = await client.post(f"/api/cloud/jobs/{waiting}/deliveries/local/retry")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "delivery_not_retryable"
    bad = await client.post(f"/api/cloud/jobs/{waiting}/deliveries/ftp/retry")
    assert bad.status_code == 422


async def test_a_check_on_demand_for_an_unknown_job_is_job_not_found(client: httpx.AsyncClient) -> None:
    """Every route answers `job_not_found` for an unknown job; this one said the job had no delivery."""
    answer = await client.post("/api/cloud/jobs/job_nope/deliveries/hub/retry")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "code": "job_not_found",
            "message": "No job 'job_nope'.",
            "hint": "`simpletuner cloud jobs list` shows jobs.",
        }
    }
