"""`POST /api/webhooks/replicate` (public: the signature is its gate, see `services/webhook_receiver.py`)
and the flight recorder under `/api/cloud/webhooks/deliveries` (management). Thin: parse, call one
service function, answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from simpletuner_cloud.api.deps import SessionDep
from simpletuner_cloud.services import webhook_recorder as recorder
from simpletuner_cloud.services.provider_fields import WEBHOOK_PATH
from simpletuner_cloud.services.webhook_receiver import Arrival, WebhookReceiver

receiver_router = APIRouter(tags=["webhooks"])
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
Outcome = Literal["accepted", "duplicate", "ignored", "rejected", "hint", "test"]
# Row ids are 64-bit: a larger number names no delivery, and SQLite cannot even compare it.
DeliveryId = Annotated[int, FastAPIPath(ge=1, le=2**63 - 1)]


class ReceiptResponse(BaseModel):
    received: bool
    outcome: Outcome
    delivery_id: int | None = None
    job_id: str | None = None
    status: str | None = None
    reason: str | None = None


class DeliveryEntry(BaseModel):
    id: int
    webhook_id: str | None
    outcome: Outcome
    code: str | None
    reason: str | None
    received_at: str
    job_id: str | None
    prediction_id: str | None
    event: str | None
    status: str | None
    client_ip: str | None
    peer_ip: str | None
    http_status: int | None
    latency_ms: float | None
    body_sha256: str | None
    body_size: int | None
    body_kept: bool
    replayed_at: str | None
    headers: dict[str, str]


class DeliveryDetail(DeliveryEntry):
    body: Any = None


class DeliveriesResponse(BaseModel):
    deliveries: list[DeliveryEntry]
    next_before: int | None  # pass as `before` for the next (older) page


class ReplayResponse(BaseModel):
    delivery: DeliveryEntry
    job_id: str
    status: str
    status_changed: bool
    new_log_characters: int


def _receiver(request: Request) -> WebhookReceiver:
    return request.app.state.webhook_receiver  # type: ignore[no-any-return]


@receiver_router.post(
    WEBHOOK_PATH,
    response_model=ReceiptResponse,
    responses={202: {"model": ReceiptResponse, "description": "Unsigned hint (signature checks off)"}},
)
async def receive_replicate_webhook(request: Request, job: str | None = None) -> JSONResponse:
    """Replicate's webhook deliveries (Standard Webhooks signed). No login: the signature is the gate."""
    arrival = Arrival(
        body=await request.body(),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        peer=request.client.host if request.client else None,
        job_ref=job,
    )
    receipt = await _receiver(request).receive(arrival)
    return JSONResponse(receipt.body, status_code=receipt.status)


@router.get("/deliveries", response_model=DeliveriesResponse)
async def list_deliveries(
    session: SessionDep,
    job: str | None = None,
    outcome: Outcome | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return await recorder.list_recorded(session, job_id=job, outcome=outcome, before=before, limit=limit)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def show_delivery(delivery_id: DeliveryId, session: SessionDep) -> dict[str, Any]:
    return await recorder.show_recorded(session, delivery_id)


@router.post("/deliveries/{delivery_id}/replay", response_model=ReplayResponse)
async def replay_delivery(delivery_id: DeliveryId, request: Request) -> dict[str, Any]:
    receiver = _receiver(request)
    answer = await recorder.replay_delivery(receiver.database, receiver.bus, receiver.catalogue, delivery_id)
    receiver.wake()
    return answer
