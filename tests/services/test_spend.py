"""A period's spend and its groups on a real database: the groups (by day, hardware, config) add up to
the total, running jobs counting for at least their reservation and jobs not started yet for theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue
from simpletuner_cloud.services.spend import period_spend, spend_groups
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import Database
from simpletuner_cloud.store.jobs import apply_status, create_job
from tests.support.provider_sandbox import record_job


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database(load_settings().effective_database_url)
    await database.migrate()
    yield database
    await database.dispose()


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
