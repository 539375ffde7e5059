"""Webhook deliveries, the flight recorder. A verified first arrival *claims* its `webhook-id` (the
unique column), so a redelivery is recognised and ignored; every other arrival (a duplicate, a
rejection, an unsigned hint) is recorded with `webhook_id` NULL and its header in `presented_id`.

Race-safe without a SAVEPOINT: `INSERT ... ON CONFLICT DO NOTHING` on both SQLite and PostgreSQL,
so of two concurrent receivers of the same delivery exactly one claims it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from simpletuner_cloud.store.database import dialect_insert
from simpletuner_cloud.store.tables import WebhookDeliveryRow, utcnow

OUTCOMES = ("accepted", "duplicate", "ignored", "rejected", "hint", "test")
# Events whose body a later delivery of the same job makes redundant (each body is the whole object).
SUPERSEDED_EVENTS = ("start", "logs", "output")


async def claim_delivery(
    session: AsyncSession, webhook_id: str, *, received_at: datetime | None = None, **fields: Any
) -> int | None:
    """The new row's id when this `webhook-id` is new; None for a redelivery (the first is kept)."""
    claimed = await claim_deliveries(
        session, [{"webhook_id": webhook_id, "received_at": received_at, **fields}]
    )
    return claimed.get(webhook_id)


async def claim_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, int]:
    """`claim_delivery` for several (distinct) ids in one statement: the new rows' ids by
    `webhook-id`; an id already claimed is missing from the answer."""
    if not rows:
        return {}
    now = utcnow()
    values = []
    for row in rows:
        row = dict(row)
        row.setdefault("outcome", "accepted")
        row.setdefault("presented_id", row["webhook_id"])
        row.setdefault("accepted", row.get("outcome", "accepted") == "accepted")
        row["received_at"] = row.get("received_at") or now
        values.append(row)
    keys = sorted({key for row in values for key in row})
    table = cast(Table, WebhookDeliveryRow.__table__)
    insert = (
        dialect_insert(session, table)
        .on_conflict_do_nothing(index_elements=["webhook_id"])
        .returning(table.c.webhook_id, table.c.id)
    )
    if len(values) == 1:
        result = await session.execute(insert.values(**values[0]))
    else:  # one cached statement, the rows sent as many values
        result = await session.execute(insert, [{key: row.get(key) for key in keys} for row in values])
    return {str(webhook_id): int(row_id) for webhook_id, row_id in result.all()}


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
    **fields: Any,
) -> bool:
    """True when this `webhook-id` is new; False for a redelivery (the first record is kept)."""
    claimed = await claim_delivery(
        session,
        webhook_id,
        job_id=job_id,
        event=event,
        status=status,
        body_sha256=body_sha256,
        accepted=accepted,
        reason=reason,
        received_at=received_at,
        **fields,
    )
    return claimed is not None


async def record_arrival(session: AsyncSession, *, received_at: datetime | None = None, **fields: Any) -> int:
    """An arrival that claims no id (duplicate, rejected, hint); returns its row id."""
    fields.setdefault("accepted", False)
    insert = (
        dialect_insert(session, WebhookDeliveryRow)
        .values(webhook_id=None, received_at=received_at or utcnow(), **fields)
        .returning(WebhookDeliveryRow.id)
    )
    return int((await session.execute(insert)).scalar_one())


async def update_delivery(session: AsyncSession, row_id: int, **values: Any) -> bool:
    statement = (
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.id == row_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]


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


async def get_delivery_row(session: AsyncSession, row_id: int) -> WebhookDeliveryRow | None:
    query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.id == row_id)
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def find_presented(session: AsyncSession, presented_id: str) -> WebhookDeliveryRow | None:
    """The latest arrival that presented this `webhook-id` (claimed or not)."""
    query = (
        select(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.presented_id == presented_id)
        .order_by(WebhookDeliveryRow.id.desc())
        .limit(1)
    )
    return (await session.scalars(query)).one_or_none()


async def list_deliveries(
    session: AsyncSession,
    *,
    job_id: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[WebhookDeliveryRow]:
    """Newest first; `before` is the last row id of the previous page."""
    query = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(WebhookDeliveryRow.job_id == job_id)
    if outcome is not None:
        query = query.where(WebhookDeliveryRow.outcome == outcome)
    if before is not None:
        query = query.where(WebhookDeliveryRow.id < before)
    return list((await session.scalars(query)).all())


async def prune_deliveries(session: AsyncSession, older_than: datetime) -> int:
    statement = delete(WebhookDeliveryRow).where(WebhookDeliveryRow.received_at < older_than)
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def drop_superseded_bodies(session: AsyncSession) -> int:
    """Forget the body of an accepted `start`/`logs`/`output` delivery once a later accepted one of
    the same job is recorded: every body is the whole prediction (logs included), so the latest says
    all the earlier ones said, and keeping each would store a long run's logs thousands of times."""
    newer = aliased(WebhookDeliveryRow)
    later_exists = exists().where(
        newer.job_id == WebhookDeliveryRow.job_id,
        newer.id > WebhookDeliveryRow.id,
        newer.outcome == "accepted",
    )
    statement = (
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.body.is_not(None),
            WebhookDeliveryRow.outcome == "accepted",
            WebhookDeliveryRow.event.in_(SUPERSEDED_EVENTS),
            later_exists,
        )
        .values(body=None)
        .execution_options(synchronize_session=False)
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def trim_unclaimed(session: AsyncSession, keep: int) -> int:
    """Keep only the newest `keep` rows that claim no id (rejections, hints, duplicates): anyone can
    send those, so their number must stay bounded between two prunes."""
    cutoff = (
        select(WebhookDeliveryRow.id)
        .where(WebhookDeliveryRow.webhook_id.is_(None))
        .order_by(WebhookDeliveryRow.id.desc())
        .offset(keep)
        .limit(1)
        .scalar_subquery()
    )
    statement = delete(WebhookDeliveryRow).where(
        WebhookDeliveryRow.webhook_id.is_(None), WebhookDeliveryRow.id <= cutoff
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]
