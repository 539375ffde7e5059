"""How the receiver tells an event from a body (Replicate's deliveries do not say which they are), and
its group commit: deliveries queued during a write share the next transaction, each in its SAVEPOINT,
on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.services.webhook_receiver import GroupCommit, infer_event
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import webhook_deliveries as deliveries
from tests.store.conftest import drop_schema, postgres_url, unique_schema


@pytest.mark.parametrize(
    ("body", "event"),
    [
        ({"status": "succeeded", "output": "x"}, "completed"),
        ({"status": "aborted"}, "completed"),
        ({"status": "processing", "output": "x", "logs": "a"}, "output"),
        ({"status": "processing", "logs": "a"}, "logs"),
        ({"status": "starting", "logs": ""}, "start"),
    ],
)
def test_infer_event(body: dict[str, str], event: str) -> None:
    assert infer_event(body) == event


# Group commit ------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    else:
        database = Database(postgres_url(), schema=unique_schema())
    try:
        await database.migrate()
        yield database
    finally:
        if database.dialect == "postgresql":
            await drop_schema(database)
        await database.dispose()


def claiming(webhook_id: str, *, fail: bool = False) -> Callable[[AsyncSession], Awaitable[int | None]]:
    async def work(session: AsyncSession) -> int | None:
        row_id = await deliveries.claim_delivery(session, webhook_id, outcome="accepted")
        if fail:
            raise RuntimeError(f"{webhook_id} broke after claiming")
        return row_id

    return work


async def claimed_ids(database: Database) -> list[str | None]:
    async with database.session() as session:
        rows = await deliveries.list_deliveries(session)
    return sorted(row.webhook_id for row in rows)  # type: ignore[type-var]


def count_commits(database: Database) -> list[int]:
    commits: list[int] = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


async def test_deliveries_queued_together_share_one_commit(db: Database) -> None:
    writes = GroupCommit(db)
    commits = count_commits(db)
    results = await asyncio.gather(*(writes.run(claiming(f"msg_{n}")) for n in range(10)))
    assert all(isinstance(row_id, int) for row_id in results)
    assert len(set(results)) == 10
    assert (writes.batches, len(commits)) == (1, 1)
    assert await claimed_ids(db) == sorted(f"msg_{n}" for n in range(10))


async def test_a_batch_is_bounded_and_the_rest_goes_into_the_next_commit(db: Database) -> None:
    writes = GroupCommit(db, limit=4)
    await asyncio.gather(*(writes.run(claiming(f"msg_{n}")) for n in range(10)))
    assert writes.batches == 3  # 4 + 4 + 2
    assert len(await claimed_ids(db)) == 10


async def test_a_lone_delivery_is_committed_before_its_answer(db: Database) -> None:
    writes = GroupCommit(db)
    row_id = await writes.run(claiming("msg_alone"))
    assert row_id is not None
    assert writes.batches == 1
    assert await claimed_ids(db) == ["msg_alone"]  # read in another session: durable


async def test_a_failing_delivery_is_rolled_back_alone(db: Database) -> None:
    writes = GroupCommit(db)
    results = await asyncio.gather(
        writes.run(claiming("msg_a")),
        writes.run(claiming("msg_b", fail=True)),
        writes.run(claiming("msg_c")),
        return_exceptions=True,
    )
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], RuntimeError)
    assert str(results[1]) == "msg_b broke after claiming"
    assert writes.batches == 1
    assert await claimed_ids(db) == ["msg_a", "msg_c"]


async def test_the_same_id_twice_in_one_batch_is_claimed_once(db: Database) -> None:
    writes = GroupCommit(db)
    first, second = await asyncio.gather(writes.run(claiming("msg_same")), writes.run(claiming("msg_same")))
    assert isinstance(first, int)
    assert second is None
    assert writes.batches == 1
    assert await claimed_ids(db) == ["msg_same"]
