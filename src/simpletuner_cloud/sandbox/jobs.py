"""A prediction or training as the sandbox keeps it, and its JSON representation (the GET body,
which is also the webhook payload)."""

from __future__ import annotations

import asyncio
import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from simpletuner_cloud.sandbox.clock import iso

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.faults import JobScript

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """26 lowercase alphanumerics, like Replicate's prediction, training and file ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


@dataclass
class Job:
    id: str
    kind: Literal["prediction", "training"]
    model: str
    version: str
    input: dict[str, Any]
    created_at: float
    seq: int
    webhook: str | None = None
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    destination: str | None = None
    deadline: float | None = None
    status: str = "starting"
    logs: str = ""
    output: Any = None
    error: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    data_removed: bool = False
    # Faults and settings captured at create time, so a later POST /faults does not change a run.
    starting_delay: float = 0.0
    fail_at_step: int | None = None
    late_validation_errors: list[dict[str, str]] | None = None
    unknown_inputs: list[str] = field(default_factory=list)
    created_via_models_route: bool = False
    script: JobScript | None = None  # a scripted outcome from POST /faults `scripts`
    run_timeout: float = 1800.0  # sandbox-clock seconds of `processing` before "Prediction timed out."
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def metrics(self) -> dict[str, float]:
        if self.completed_at is None:
            return {}
        metrics = {"total_time": round(self.completed_at - self.created_at, 6)}
        if self.started_at is not None:
            metrics["predict_time"] = round(self.completed_at - self.started_at, 6)
        return metrics


def job_json(
    job: Job, base_url: str, *, as_prediction: bool = False, urls_collection: str | None = None
) -> dict[str, Any]:
    """The body of GET /v1/predictions/{id} (or /v1/trainings/{id}). Unset timestamps are left out
    rather than sent as null, and `logs` is always a string (docs/replicate-api.md section 8.4).

    `as_prediction` renders a training the way the predictions routes serve it (the prediction
    schema requires `output`, null included); `urls_collection` overrides the collection named in
    `urls` (Replicate's training create response points them at `predictions`)."""
    api = f"{base_url}/v1/{urls_collection or job.kind + 's'}/{job.id}"
    body: dict[str, Any] = {
        "id": job.id,
        "model": job.model,
        "version": job.version,
        "input": job.input,
        "logs": job.logs,
        "output": job.output,
        "data_removed": job.data_removed,
        "error": job.error,
        "status": job.status,
        "created_at": iso(job.created_at),
        "source": "api",
        "urls": {"get": api, "cancel": f"{api}/cancel", "web": f"{base_url}/p/{job.id}"},
        "metrics": job.metrics(),
    }
    if job.started_at is not None:
        body["started_at"] = iso(job.started_at)
    if job.completed_at is not None:
        body["completed_at"] = iso(job.completed_at)
    if job.deadline is not None:
        body["deadline"] = iso(job.deadline)
    if job.kind == "training":
        body["destination"] = job.destination
        if job.output is None and not as_prediction:
            del body["output"]  # the training schema types `output` as an object, without null
    return body
