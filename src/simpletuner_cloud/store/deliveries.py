"""Repository functions of the delivery ledger: a job's deliveries and their artifacts, the delivery
task's lease (claimed like the job runner's: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a compare-and-set
on the lock everywhere), and state moves that only happen from the states the caller expects."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES
from simpletuner_cloud.store.database import dialect_insert
from simpletuner_cloud.store.jobs import _now, _until
from simpletuner_cloud.store.tables import DeliveryArtifactRow, DeliveryRow, JobRow, utcnow

WAITING_STATES = ("pending", "receiving")  # before the job's end


async def create_deliveries(
    session: AsyncSession,
    job_id: str,
    planned: Iterable[tuple[str, dict[str, Any]]],
    *,
    at: datetime | None = None,
) -> list[DeliveryRow]:
    now = at or utcnow()
    rows = [
        DeliveryRow(
            job_id=job_id,
            destination=destination,
            state="pending",
            target=target,
            attempts=0,
            next_check_at=now,
            created_at=now,
            updated_at=now,
        )
        for destination, target in planned
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def list_deliveries(session: AsyncSession, job_id: str) -> list[DeliveryRow]:
    query = (
        select(DeliveryRow)
        .where(DeliveryRow.job_id == job_id)
        .order_by(DeliveryRow.created_at, DeliveryRow.id)
    )
    return list((await session.scalars(query.execution_options(populate_existing=True))).all())


async def get_delivery(session: AsyncSession, delivery_id: str) -> DeliveryRow | None:
    query = select(DeliveryRow).where(DeliveryRow.id == delivery_id).execution_options(populate_existing=True)
    return (await session.scalars(query)).one_or_none()


async def delivery_of(session: AsyncSession, job_id: str, destination: str) -> DeliveryRow | None:
    query = select(DeliveryRow).where(DeliveryRow.job_id == job_id, DeliveryRow.destination == destination)
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def claim_due_deliveries(
    session: AsyncSession, holder: str, *, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[DeliveryRow]:
    """Lease up to `limit` deliveries that need a check now: those whose next check has come, and
    those still waiting for their job's end (pending or receiving) whose job has ended. Each half
    reads its own index. Commit right after."""
    current = _now(session, now)
    free = or_(
        DeliveryRow.lock_token.is_(None), DeliveryRow.locked_until < current, DeliveryRow.lock_token == holder
    )
    due = select(DeliveryRow.id).where(DeliveryRow.next_check_at <= current, free)
    ended = (
        select(DeliveryRow.id)
        .join(JobRow, JobRow.id == DeliveryRow.job_id)
        .where(
            DeliveryRow.state.in_(WAITING_STATES),
            JobRow.status.in_([s.value for s in TERMINAL_STATUSES]),
            free,
        )
    )
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    ids: list[str] = []
    for query in (due.order_by(DeliveryRow.next_check_at, DeliveryRow.id), ended.order_by(DeliveryRow.id)):
        query = query.limit(limit)
        if postgres:
            query = query.with_for_update(of=DeliveryRow, skip_locked=True)
        ids += [i for i in (await session.scalars(query)).all() if i not in ids]
    ids = ids[:limit]
    if not ids:
        return []
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id.in_(ids), free)
        .values(lock_token=holder, locked_until=_until(session, lease_seconds, now))
        .execution_options(synchronize_session=False)
    )
    claimed = select(DeliveryRow).where(DeliveryRow.id.in_(ids), DeliveryRow.lock_token == holder)
    return list((await session.scalars(claimed.execution_options(populate_existing=True))).all())


async def release_delivery(session: AsyncSession, delivery_id: str, holder: str) -> None:
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id, DeliveryRow.lock_token == holder)
        .values(lock_token=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )


async def update_delivery(
    session: AsyncSession,
    delivery_id: str,
    *,
    fence: str | None = None,
    from_states: Iterable[str] | None = None,
    **values: Any,
) -> bool:
    """Set fields; with `fence`, only while that lease is alive; with `from_states`, only from those
    states (a compare-and-set, so two writers never both move a delivery). True when written."""
    conditions: list[Any] = [DeliveryRow.id == delivery_id]
    if fence is not None:
        conditions += [DeliveryRow.lock_token == fence, DeliveryRow.locked_until > _now(session, None)]
    if from_states is not None:
        conditions.append(DeliveryRow.state.in_(list(from_states)))
    values.setdefault("updated_at", utcnow())
    statement = (
        update(DeliveryRow).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]


async def record_artifact(
    session: AsyncSession, delivery_id: str, job_id: str, name: str, **fields: Any
) -> None:
    """Insert or replace the artifact `name` of a delivery (a repeated upload replaces the file)."""
    values = {"delivery_id": delivery_id, "job_id": job_id, "name": name, **fields}
    values.setdefault("received_at", utcnow())
    insert = dialect_insert(session, DeliveryArtifactRow).values(**values)
    changed = {k: v for k, v in values.items() if k not in ("delivery_id", "job_id", "name")}
    changed.setdefault("verified_at", None)
    await session.execute(insert.on_conflict_do_update(index_elements=["delivery_id", "name"], set_=changed))


async def replace_artifacts(
    session: AsyncSession, delivery_id: str, job_id: str, artifacts: list[dict[str, Any]]
) -> None:
    """The delivery's artifacts become exactly these (a listing of where the files landed)."""
    await session.execute(delete(DeliveryArtifactRow).where(DeliveryArtifactRow.delivery_id == delivery_id))
    for artifact in artifacts:
        await record_artifact(session, delivery_id, job_id, **artifact)


async def delete_artifact(session: AsyncSession, delivery_id: str, name: str) -> bool:
    statement = delete(DeliveryArtifactRow).where(
        DeliveryArtifactRow.delivery_id == delivery_id, DeliveryArtifactRow.name == name
    )
    return (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]


async def list_artifacts(
    session: AsyncSession, *, job_id: str | None = None, delivery_id: str | None = None
) -> list[DeliveryArtifactRow]:
    query = select(DeliveryArtifactRow)
    if job_id is not None:
        query = query.where(DeliveryArtifactRow.job_id == job_id)
    if delivery_id is not None:
        query = query.where(DeliveryArtifactRow.delivery_id == delivery_id)
    query = query.order_by(DeliveryArtifactRow.delivery_id, DeliveryArtifactRow.name)
    return list((await session.scalars(query.execution_options(populate_existing=True))).all())


async def artifact_etags(session: AsyncSession, delivery_id: str, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    query = select(DeliveryArtifactRow.name, DeliveryArtifactRow.etag).where(
        DeliveryArtifactRow.delivery_id == delivery_id, DeliveryArtifactRow.name.in_(names)
    )
    return {name: etag for name, etag in (await session.execute(query)).all() if etag}
