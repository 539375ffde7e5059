"""Webhook deliveries, unique by the `webhook-id` header, so a redelivery is recognised and ignored.

Race-safe without a SAVEPOINT: `INSERT ... ON CONFLICT DO NOTHING` on both SQLite and PostgreSQL,
so of two concurrent receivers of the same delivery exactly one sees it as new."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.store.database import dialect_insert
from simpletuner_cloud.store.tables import WebhookDeliveryRow, utcnow


async def record_delivery(
    session: AsyncSession,
    webhook_id: str,
    *,
    job_id: str | None = None,
    event: str | None = None,
    status: str | None = None,
    body_sha256: str | None = None,
    accepted: bool = True,
    reason: str | None = None,
    received_at: datetime | None = None,
) -> bool:
    """True when this `webhook-id` is new; False for a redelivery (the first record is kept)."""
    insert = (
        dialect_insert(session, WebhookDeliveryRow)
        .values(
            webhook_id=webhook_id,
            job_id=job_id,
            event=event,
            status=status,
            body_sha256=body_sha256,
            accepted=accepted,
            reason=reason,
            received_at=received_at or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["webhook_id"])
        .returning(WebhookDeliveryRow.id)
    )
    inserted = (await session.execute(insert)).scalar_one_or_none()
    return inserted is not None


async def mark_delivery(
    session: AsyncSession,
    webhook_id: str,
    *,
    accepted: bool,
    reason: str | None = None,
    job_id: str | None = None,
) -> bool:
    """Record the verdict reached after recording (e.g. unknown job, stale event)."""
    values: dict[str, object] = {"accepted": accepted, "reason": reason}
    if job_id is not None:
        values["job_id"] = job_id
    statement = (
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.webhook_id == webhook_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]


async def get_delivery(session: AsyncSession, webhook_id: str) -> WebhookDeliveryRow | None:
    query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def list_deliveries(
    session: AsyncSession, *, job_id: str | None = None, limit: int = 100
) -> list[WebhookDeliveryRow]:
    """Newest first."""
    query = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(WebhookDeliveryRow.job_id == job_id)
    return list((await session.scalars(query)).all())
