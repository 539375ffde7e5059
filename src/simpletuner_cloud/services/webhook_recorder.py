"""The webhook flight recorder: what is kept of each arrival (headers without secrets, the body of an
accepted one with the job's Secret inputs masked), how it is shown, replayed and pruned.

Kept 7 days. A verified delivery's row is written in the same transaction as what it applied (see
`webhook_receiver.py`); arrivals anyone can send (rejections, unsigned hints) are rate-limited and
capped in number, so a flood of forged requests cannot fill the disk."""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.errors import CloudError, NotFound
from simpletuner_cloud.security.redaction import MASK, mask, redact, secret_value
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store import webhook_deliveries as deliveries
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import WebhookDeliveryRow, utcnow

log = logging.getLogger(__name__)
RETENTION = timedelta(days=7)
PRUNE_EVERY = 600.0  # seconds between two prunes by one server
MAX_UNCLAIMED_ROWS = 2000  # rejections and hints kept at most (newest first)
UNCLAIMED_PER_SECOND = 20.0  # rejections and hints recorded per second per server; more are counted
MAX_HEADERS = 64
MAX_HEADER_VALUE = 512
# Headers that carry credentials are never kept, whatever their value looks like.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "x-admin-token"}
)
# The trainer's Secret inputs (docs/trainer-contract.md); Replicate's prediction body echoes `input`.
SECRET_INPUTS = frozenset({"hf_token", "s3_access_key", "s3_secret_key"})


def kept_headers(raw: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names, repeated headers joined, credentials dropped, long values cut, token-shaped
    text masked."""
    kept: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        if key in SECRET_HEADERS:
            continue
        if key not in kept and len(kept) >= MAX_HEADERS:
            continue
        text = redact(value)
        if len(text) > MAX_HEADER_VALUE:
            text = text[:MAX_HEADER_VALUE] + f"... ({len(value)} characters)"
        kept[key] = f"{kept[key]}, {text}" if key in kept else text
    return kept


def _masked(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload with Secret inputs masked and the secrets the trainer printed in its logs or
    error blanked (as the job's stored log is), or None when nothing needed masking."""
    changes: dict[str, Any] = {}
    inputs = payload.get("input")
    if isinstance(inputs, dict):
        masked = {
            key: MASK
            if isinstance(value, str) and (key in SECRET_INPUTS or secret_value(key, value)) and value
            else value
            for key, value in inputs.items()
        }
        if masked != inputs:
            changes["input"] = masked
    for key in ("logs", "error"):
        text = payload.get(key)
        if isinstance(text, str) and (blanked := mask(text)) != text:
            changes[key] = blanked
    return {**payload, **changes} if changes else None


def stored_body(raw: bytes, payload: dict[str, Any]) -> bytes:
    """What the recorder keeps of an accepted body: the exact bytes, unless secrets had to be
    masked (then the re-serialised object), compressed."""
    masked = _masked(payload)
    data = raw if masked is None else json.dumps(masked).encode()
    return zlib.compress(data, 1)


def read_body(row: WebhookDeliveryRow) -> Any:
    if row.body is None:
        return None
    return json.loads(zlib.decompress(row.body))


@dataclass
class ArrivalBudget:
    """A token bucket for arrivals that claim no id: a flood of forged requests costs at most this
    many writes per second; the rest are only counted (and said in the log)."""

    rate: float = UNCLAIMED_PER_SECOND
    burst: float = UNCLAIMED_PER_SECOND * 2
    clock: Callable[[], float] = time.monotonic
    skipped: int = 0
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.stamp = self.burst, self.clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.skipped += 1
        if self.skipped in (1, 100) or self.skipped % 10_000 == 0:
            log.warning("webhook receiver: %d rejected or unsigned arrivals not recorded", self.skipped)
        return False


def delivery_answer(row: WebhookDeliveryRow, *, with_body: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": row.id,
        "webhook_id": row.presented_id,
        "outcome": row.outcome,
        "code": row.error_code,
        "reason": row.reason,
        "received_at": row.received_at.isoformat(),
        "job_id": row.job_id,
        "prediction_id": row.prediction_id,
        "event": row.event,
        "status": row.status,
        "client_ip": row.client_ip,
        "peer_ip": row.peer_ip,
        "http_status": row.http_status,
        "latency_ms": row.latency_ms,
        "body_sha256": row.body_sha256,
        "body_size": row.body_size,
        "body_kept": row.body is not None,
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "headers": row.headers or {},
    }
    if with_body:
        answer["body"] = read_body(row)
    return answer


async def list_recorded(
    session: AsyncSession,
    *,
    job_id: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    rows = await deliveries.list_deliveries(
        session, job_id=job_id, outcome=outcome, before=before, limit=limit + 1
    )
    page = rows[:limit]
    return {
        "deliveries": [delivery_answer(row) for row in page],
        "next_before": page[-1].id if len(rows) > limit and page else None,
    }


async def _require(session: AsyncSession, row_id: int) -> WebhookDeliveryRow:
    row = await deliveries.get_delivery_row(session, row_id)
    if row is None:
        raise NotFound(
            f"No recorded webhook delivery {row_id}.",
            code="delivery_not_found",
            hint="`simpletuner cloud webhooks list` shows the recorded deliveries (kept 7 days).",
        )
    return row


async def show_recorded(session: AsyncSession, row_id: int) -> dict[str, Any]:
    return delivery_answer(await _require(session, row_id), with_body=True)


async def replay_delivery(
    database: Database, bus: EventBus, catalogue: HardwareCatalogue, row_id: int
) -> dict[str, Any]:
    """Apply a recorded accepted delivery's body again (recovery after a bug): forward-only like any
    delivery, so replaying something already applied changes nothing."""
    async with database.session() as session:
        row = await _require(session, row_id)
        problem = None
        if row.outcome != "accepted":
            problem = f"it was {row.outcome}, not accepted"
        elif row.body is None:
            problem = "its body was not kept (a later delivery of the same job superseded it)"
        elif row.job_id is None or await repo.get_job(session, row.job_id) is None:
            problem = "its job no longer exists"
        if problem is not None:
            raise CloudError(
                f"Delivery {row_id} cannot be replayed: {problem}.",
                code="delivery_not_replayable",
                hint="Replay an accepted delivery whose body is kept; the job's latest one says the most.",
            )
        assert row.job_id is not None
        applied = await apply_prediction(
            session, row.job_id, read_body(row), catalogue, source="webhook-replay"
        )
        now = utcnow()
        await deliveries.update_delivery(session, row_id, replayed_at=now)
        await repo.add_event(
            session, row.job_id, "webhook_replayed", data={"delivery": row_id, "webhook_id": row.presented_id}
        )
        await announce(session, row.job_id)
        await session.commit()
        fresh = await _require(session, row_id)
    bus.notify()
    return {
        "delivery": delivery_answer(fresh),
        "job_id": row.job_id,
        "status_changed": applied.status_changed,
        "new_log_characters": len(applied.new_logs),
        "status": applied.status.value,
    }


class DeliveryPruner:
    """The worker's periodic task: drop deliveries older than 7 days, the bodies later deliveries
    superseded, and rejections beyond the cap; at most every PRUNE_EVERY seconds per server."""

    def __init__(self, database: Database, every: float = PRUNE_EVERY) -> None:
        self.database = database
        self.every = every
        self._last: float | None = None

    async def run(self) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        await self.prune()

    async def prune(self) -> dict[str, int]:
        async with self.database.session() as session:
            counts = {
                "expired": await deliveries.prune_deliveries(session, utcnow() - RETENTION),
                "bodies_dropped": await deliveries.drop_superseded_bodies(session),
                "unclaimed_trimmed": await deliveries.trim_unclaimed(session, MAX_UNCLAIMED_ROWS),
            }
            await session.commit()
        if any(counts.values()):
            log.info("webhook deliveries pruned: %s", counts)
        return counts
