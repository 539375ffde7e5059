"""A period's spend and its groups on a real database (SQLite and PostgreSQL): the groups (by day,
hardware, config) add up to the total, running jobs counting for at least their reservation and jobs not
started yet for theirs, a deleted job's cost still counting where it did, and a job finishing while
the spend is read counted once, never zero times or twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.errors import NotFound
from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue
from simpletuner_cloud.services.job_control import delete_job
from simpletuner_cloud.services.spend import period_spend, spend_groups
from simpletuner_cloud.store import Database
from simpletuner_cloud.store.jobs import apply_status, create_job, set_fields
from simpletuner_cloud.store.tables import DeletedJobCostRow
from tests.support.provider_sandbox import record_job


async def test_the_groups_add_up_to_the_total_with_running_jobs_at_their_reservation(db: Database) -> None:
    """Two jobs running for a minute ($0.40 reserved each, a few cents accrued) and $0.10 finished: the
    total said $0.90 while the only day group said $0.17 (accrued cost only, no reservation)."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await record_job(session, "succeeded", completed=now - timedelta(minutes=5), cost="0.10")
        for hardware in ("l40s", "a100"):
            job_id = await record_job(
                session, "running", hardware=hardware, started=now - timedelta(minutes=1)
            )
            await apply_status(session, job_id, "running", reserved_cost_usd=Decimal("0.40"))
        waiting, _ = await create_job(session, config_name="sdxl", hardware="l40s", model="m")
        await apply_status(session, waiting.id, "queued", reserved_cost_usd=Decimal("0.25"))
        await session.commit()
        catalogue = packaged_catalogue()
        spend = await period_spend(session, catalogue, "daily", now, UTC, "UTC")
        assert (spend.committed, spend.running, spend.reserved) == (
            Decimal("0.10"),
            Decimal("0.80"),
            Decimal("0.25"),
        )
        sums = {}
        for group_by in ("day", "hardware", "config"):
            groups = await spend_groups(session, catalogue, group_by, spend.start, spend.end, UTC, now)
            sums[group_by] = sum((g["usd"] for g in groups), Decimal(0))
        by_hardware = {
            g["key"]: g["usd"]
            for g in await spend_groups(session, catalogue, "hardware", spend.start, spend.end, UTC, now)
        }
    assert sums == {"day": spend.total, "hardware": spend.total, "config": spend.total}
    assert spend.total == Decimal("1.15")
    assert by_hardware == {"l40s": Decimal("0.75"), "a100": Decimal("0.40")}


async def _views(session: AsyncSession, now: datetime) -> dict[str, Any]:
    catalogue = packaged_catalogue()
    spend = await period_spend(session, catalogue, "daily", now, UTC, "UTC")
    views: dict[str, Any] = {"spend": spend}
    for group_by in ("day", "hardware", "config"):
        groups = await spend_groups(session, catalogue, group_by, spend.start, spend.end, UTC, now)
        views[group_by] = {g["key"]: g["usd"] for g in groups}
        assert sum(views[group_by].values(), Decimal(0)) == spend.total
    return views


async def test_a_deleted_jobs_cost_still_counts_in_the_total_and_every_group(db: Database) -> None:
    """Deleting a finished job removed its cost from the period's spend (and the limit's room grew)."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await record_job(
            session, "succeeded", hardware="a100", completed=now - timedelta(minutes=5), cost="0.030652"
        )
        gone = await record_job(session, "failed", completed=now - timedelta(minutes=1), cost="0.003823")
        running = await record_job(session, "running", started=now - timedelta(minutes=1))
        await apply_status(session, running, "running", reserved_cost_usd=Decimal("0.40"))
        await set_fields(session, gone, cleaned_at=now)
        await session.commit()
        before = await _views(session, now)

        result = await delete_job(session, gone)

        assert await _views(session, now) == before
        assert before["spend"].committed == Decimal("0.034475")
        assert before["hardware"] == {"a100": Decimal("0.030652"), "l40s": Decimal("0.403823")}
        assert result.not_deleted == [
            "Its cost, $0.003823: it still counts in the spend and against the cost limit of the period it "
            "finished in."
        ]
        kept = (await session.scalars(select(DeletedJobCostRow))).one()
        assert (kept.job_id, kept.hardware, kept.config_name, kept.cost_usd, kept.completed_at) == (
            gone, "l40s", "flux-lora", Decimal("0.003823"), now - timedelta(minutes=1)
        )  # fmt: skip
        with pytest.raises(NotFound):
            await delete_job(session, gone)


class FinishingBetweenStatements:
    """The session a spend is read with, where a job finishes (in another session, committed) right
    after the read's first statement: what a worker may do at any moment."""

    def __init__(self, session: AsyncSession, finish: Any) -> None:
        self.session, self.finish, self.statements = session, finish, 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._after_first(self.session.execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._after_first(self.session.scalar(*args, **kwargs))

    async def _after_first(self, statement: Any) -> Any:
        result = await statement
        self.statements += 1
        if self.statements == 1:
            await self.finish()
        return result


async def test_a_job_finishing_while_the_spend_is_read_counts_once(db: Database) -> None:
    """Running with $5.00 reserved, it finishes for $1.00 between two of the spend's reads: the
    total was $0 (in neither read), so a Block limit let the next job through as if nothing ran."""
    now = datetime.now(UTC)
    async with db.session() as session:
        job_id = await record_job(session, "running", started=now - timedelta(minutes=1))
        await apply_status(session, job_id, "running", reserved_cost_usd=Decimal("5.00"))
        await session.commit()

    async def finish() -> None:
        async with db.session() as worker:
            await apply_status(worker, job_id, "succeeded", completed_at=now, actual_cost_usd=Decimal("1.00"))
            await worker.commit()

    async with db.session() as session:
        reading = FinishingBetweenStatements(session, finish)
        spend = await period_spend(reading, packaged_catalogue(), "daily", now, UTC, "UTC")  # type: ignore[arg-type]
        assert reading.statements >= 1
        assert spend.total in (Decimal("5.00"), Decimal("1.00"))  # before it finished, or after
    async with db.session() as session:
        after = await period_spend(session, packaged_catalogue(), "daily", now, UTC, "UTC")
    assert (after.committed, after.running, after.total) == (Decimal("1.00"), Decimal(0), Decimal("1.00"))
