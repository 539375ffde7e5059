"""Replicate-shaped webhook deliveries for the receiver's tests: a prediction body, signed the way
Replicate (and the sandbox) sign it, and jobs in the store that deliveries can be about."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from simpletuner_cloud.replicate.webhooks import signed_headers
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.jobs import apply_status, create_job, record_prediction_id
from simpletuner_cloud.store.tables import utcnow
from tests.support.provider_sandbox import RunningSandbox, standalone_sandbox

# The Standard Webhooks reference secret (docs/replicate-api.md section 4); the tests' sandbox signs with it.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def new_msg_id() -> str:
    return "msg_" + secrets.token_hex(12)


def prediction(prediction_id: str, status: str = "processing", **fields: Any) -> dict[str, Any]:
    """A prediction body as Replicate sends it (the GET representation)."""
    body: dict[str, Any] = {
        "id": prediction_id,
        "model": "simpletuner/advanced-trainer",
        "version": "0" * 64,
        "input": {"config_json": "{}"},
        "logs": "",
        "output": None,
        "error": None,
        "status": status,
        "created_at": "2026-12-01T10:00:00.000Z",
        "metrics": {},
    }
    body.update(fields)
    return body


def encode(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def signed(
    body: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The raw body and its three Standard Webhooks headers (plus the content type Replicate sends)."""
    raw = encode(body)
    at = int(time.time() if timestamp is None else timestamp)
    headers = signed_headers(secret, msg_id or new_msg_id(), at, raw)
    return raw, {**headers, "content-type": "application/json"}


async def tracked_job(database: Database, prediction_id: str | None, status: str = "queued") -> str:
    """A job as the worker leaves it after the create: `queued` (or `submitting` without an id), its
    next poll a day away, so only deliveries move it during a test."""
    async with database.session() as session:
        job, _ = await create_job(
            session, config_name="flux-lora", hardware="l40s", model="simpletuner/advanced-trainer"
        )
        if prediction_id is not None:
            await record_prediction_id(session, job.id, prediction_id)
        await apply_status(session, job.id, status, next_poll_at=utcnow() + timedelta(days=1))
        await session.commit()
    return job.id


@contextmanager
def signing_sandbox(folder: Path) -> Iterator[RunningSandbox]:
    """A standalone sandbox that signs with `SECRET` and whose predictions stay running for a whole
    test (long simulated steps): the receiver's tests read the secret from it, as from Replicate."""
    with standalone_sandbox(folder, webhook_secret=SECRET, step_seconds=30.0, boot_seconds=0.0) as running:
        yield running
