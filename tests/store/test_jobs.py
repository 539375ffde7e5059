"""Job repository: creation, look-ups, listing, the guarded status apply (including the race),
the timeline and the worker's lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.errors import InvalidTransition, NotFound
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.tables import JobRow

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def new_job(db: Database, **kwargs: Any) -> JobRow:
    async with db.session() as session:
        job, _ = await repo.create_job(
            session, config_name="portrait", hardware="l40s", model="simpletuner/advanced-trainer", **kwargs
        )
        await session.commit()
    return job


async def move(db: Database, job_id: str, target: JobStatus, **kwargs: Any) -> tuple[JobRow, bool]:
    async with db.session() as session:
        result = await repo.apply_status(session, job_id, target, **kwargs)
        await session.commit()
    return result


async def test_create_job_mints_ids_and_records_the_first_event(db: Database) -> None:
    job = await new_job(db, spec={"steps": 100}, estimated_cost_usd=Decimal("1.234567"), at=T0)
    assert job.id.startswith("job_") and len(job.id) == 24
    assert len(job.client_ref) == 32
    async with db.session() as session:
        loaded = await repo.get_job(session, job.id)
        events = await repo.list_events(session, job.id)
    assert loaded is not None
    assert loaded.status == "created"
    assert loaded.created_at == T0 and loaded.created_at.tzinfo is not None
    assert loaded.estimated_cost_usd == Decimal("1.234567")
    assert loaded.spec == {"steps": 100}
    assert loaded.output is None and loaded.prediction_id is None and loaded.logs_offset == 0
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [("status", None, "created")]


async def test_lookups_by_every_key(db: Database) -> None:
    job = await new_job(db, job_id="job_given", client_ref="ref1", idempotency_key="key-1", request_hash="h")
    await move(db, job.id, JobStatus.QUEUED, prediction_id="pred123")
    async with db.session() as session:
        assert (await repo.get_job_by_prediction_id(session, "pred123")).id == "job_given"  # type: ignore[union-attr]
        assert (await repo.get_job_by_client_ref(session, "ref1")).id == "job_given"  # type: ignore[union-attr]
        by_key = await repo.get_job_by_idempotency_key(session, "key-1")
        assert by_key is not None and by_key.request_hash == "h"
        assert await repo.get_job(session, "job_missing") is None
        assert await repo.get_job_by_prediction_id(session, "nope") is None
        with pytest.raises(NotFound) as caught:
            await repo.require_job(session, "job_missing")
        assert caught.value.code == "job_not_found"


async def test_duplicate_idempotency_key_returns_the_first_job(db: Database) -> None:
    first = await new_job(db, idempotency_key="same", request_hash="h1")
    async with db.session() as session:
        again, created = await repo.create_job(
            session,
            config_name="other",
            hardware="a100",
            model="m/m",
            idempotency_key="same",
            request_hash="h2",
        )
        # ON CONFLICT DO NOTHING keeps the transaction usable (an IntegrityError aborts it on PostgreSQL)
        assert await repo.count_jobs(session) == 1
        await session.commit()
    assert not created and again.id == first.id and again.request_hash == "h1"


async def test_concurrent_creates_with_one_key_make_one_job(db: Database) -> None:
    async def create(n: int) -> tuple[str, bool]:
        async with db.session() as session:
            job, created = await repo.create_job(
                session, config_name=f"c{n}", hardware="l40s", model="m/m", idempotency_key="race"
            )
            await session.commit()
            return job.id, created

    results = await asyncio.gather(*(create(n) for n in range(5)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, False, True]


async def test_list_jobs_newest_first_with_cursor_and_status(db: Database) -> None:
    ids = [(await new_job(db)).id for _ in range(5)]
    ids.sort()
    await move(db, ids[1], JobStatus.FAILED)
    async with db.session() as session:
        assert [j.id for j in await repo.list_jobs(session)] == ids[::-1]
        page = await repo.list_jobs(session, limit=2)
        assert [j.id for j in page] == [ids[4], ids[3]]
        rest = await repo.list_jobs(session, limit=10, before=page[-1].id)
        assert [j.id for j in rest] == [ids[2], ids[1], ids[0]]
        assert [j.id for j in await repo.list_jobs(session, status="failed")] == [ids[1]]
        both = await repo.list_jobs(session, status=[JobStatus.FAILED, JobStatus.CREATED])
        assert len(both) == 5
        active = await repo.list_active_jobs(session)
        assert [j.id for j in active] == [ids[0], ids[2], ids[3], ids[4]]


async def test_apply_status_walks_forward_and_stamps_times(db: Database) -> None:
    job = await new_job(db)
    _, changed = await move(db, job.id, JobStatus.QUEUED, provider_status="starting", at=T0)
    assert changed
    running, changed = await move(
        db, job.id, JobStatus.RUNNING, provider_status="processing", at=T0 + timedelta(minutes=1)
    )
    assert changed and running.started_at == T0 + timedelta(minutes=1)
    done, changed = await move(
        db,
        job.id,
        JobStatus.SUCCEEDED,
        provider_status="succeeded",
        message="training finished",
        at=T0 + timedelta(minutes=9),
        output={"weights": ["https://replicate.delivery/x/lora.safetensors"], "n": 1.5},
        actual_cost_usd=Decimal("0.468000"),
    )
    assert changed
    assert done.status == "succeeded" and done.provider_status == "succeeded"
    assert done.completed_at == T0 + timedelta(minutes=9)
    assert done.updated_at == T0 + timedelta(minutes=9)
    assert done.output == {"weights": ["https://replicate.delivery/x/lora.safetensors"], "n": 1.5}
    assert done.actual_cost_usd == Decimal("0.468")
    async with db.session() as session:
        events = await repo.list_events(session, job.id)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "created"),
        ("created", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    assert events[-1].message == "training finished"
    assert events[-1].data == {"provider_status": "succeeded"}


async def test_same_active_status_updates_fields_without_an_event(db: Database) -> None:
    job = await new_job(db)
    await move(db, job.id, JobStatus.RUNNING)
    progress = {"step": 40, "total": 100, "stage": "training", "loss": 0.125}
    row, changed = await move(db, job.id, JobStatus.RUNNING, progress=progress)
    assert not changed
    assert row.progress == progress
    async with db.session() as session:
        assert len(await repo.list_events(session, job.id)) == 2


async def test_stale_and_duplicate_events_change_nothing(db: Database) -> None:
    job = await new_job(db)
    await move(db, job.id, JobStatus.SUCCEEDED, output="first")
    for late in (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.SUCCEEDED):
        row, changed = await move(db, job.id, late, output="late")
        assert not changed and row.status == "succeeded" and row.output == "first"


async def test_conflicting_terminal_status_is_refused(db: Database) -> None:
    job = await new_job(db)
    await move(db, job.id, JobStatus.CANCELED)
    with pytest.raises(InvalidTransition):
        await move(db, job.id, JobStatus.SUCCEEDED)


async def test_apply_status_rejects_unknown_fields_and_jobs(db: Database) -> None:
    job = await new_job(db)
    async with db.session() as session:
        with pytest.raises(TypeError, match="lock_token"):
            await repo.apply_status(session, job.id, JobStatus.QUEUED, lock_token="x")
        with pytest.raises(NotFound):
            await repo.apply_status(session, "job_missing", JobStatus.QUEUED)


async def test_concurrent_apply_status_exactly_one_wins(db: Database) -> None:
    """Webhook and poller deliver `succeeded` together, through separate sessions/connections."""
    job = await new_job(db)
    await move(db, job.id, JobStatus.RUNNING)
    start = asyncio.Event()

    async def writer(n: int) -> bool:
        async with db.session() as session:
            await session.connection()  # each writer holds its own connection before the race
            await start.wait()
            _, changed = await repo.apply_status(session, job.id, JobStatus.SUCCEEDED, message=f"writer {n}")
            await session.commit()
            return changed

    tasks = [asyncio.create_task(writer(n)) for n in range(4)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == [False, False, False, True]
    async with db.session() as session:
        events = await repo.list_events(session, job.id)
    assert [e.to_status for e in events].count("succeeded") == 1


async def test_concurrent_conflicting_outcomes_keep_the_first(db: Database) -> None:
    job = await new_job(db)
    await move(db, job.id, JobStatus.RUNNING)

    async def writer(target: JobStatus) -> str:
        async with db.session() as session:
            try:
                await repo.apply_status(session, job.id, target)
                await session.commit()
            except InvalidTransition:
                return "refused"
            return "applied"

    results = await asyncio.gather(writer(JobStatus.SUCCEEDED), writer(JobStatus.CANCELED))
    assert sorted(results) == ["applied", "refused"]
    async with db.session() as session:
        final = await repo.get_job(session, job.id)
    assert final is not None and final.status in ("succeeded", "canceled")


async def test_add_and_list_events_resume_after_id(db: Database) -> None:
    job = await new_job(db)
    async with db.session() as session:
        first = await repo.add_event(session, job.id, "log", message="step 1/10", data={"step": 1})
        second = await repo.add_event(session, job.id, "cost", data={"usd": "0.01"})
        await session.commit()
    async with db.session() as session:
        after = await repo.list_events(session, job.id, after_id=first.id)
        limited = await repo.list_events(session, job.id, limit=1)
    assert [e.id for e in after] == [second.id]
    assert after[0].data == {"usd": "0.01"} and after[0].at.tzinfo is not None
    assert limited[0].kind == "status"


async def test_events_need_an_existing_job(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(IntegrityError):
            await repo.add_event(session, "job_missing", "log")


async def test_claim_and_release_lease(db: Database) -> None:
    job = await new_job(db)
    async with db.session() as session:
        assert await repo.claim_job(session, job.id, "worker-a", 30, now=T0)
        assert not await repo.claim_job(session, job.id, "worker-b", 30, now=T0 + timedelta(seconds=10))
        assert await repo.claim_job(session, job.id, "worker-a", 30, now=T0 + timedelta(seconds=10))  # renew
        assert not await repo.claim_job(session, job.id, "worker-b", 30, now=T0 + timedelta(seconds=39))
        assert await repo.claim_job(session, job.id, "worker-b", 30, now=T0 + timedelta(seconds=41))
        assert not await repo.release_job(session, job.id, "worker-a")  # lost it: expired and taken
        assert await repo.release_job(session, job.id, "worker-b")
        assert await repo.claim_job(session, job.id, "worker-a", 30, now=T0 + timedelta(seconds=42))
        await session.commit()
        assert not await repo.claim_job(session, "job_missing", "worker-a", 30)


async def test_concurrent_claims_one_winner(db: Database) -> None:
    job = await new_job(db)

    async def claim(token: str) -> bool:
        async with db.session() as session:
            won = await repo.claim_job(session, job.id, token, 60)
            await session.commit()
            return won

    results = await asyncio.gather(*(claim(f"w{n}") for n in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_logs_offset_only_moves_forward_and_chunks_are_kept(db: Database) -> None:
    job = await new_job(db)
    async with db.session() as session:
        assert await repo.append_logs(session, job.id, "a" * 100) == "a" * 100
        assert await repo.append_logs(session, job.id, "a" * 50) == ""  # an older, shorter snapshot
        assert await repo.append_logs(session, job.id, "a" * 100 + "bc") == "bc"
        await session.commit()
        loaded = await repo.require_job(session, job.id)
        assert loaded.logs_offset == 102
        assert await repo.read_logs(session, job.id) == "a" * 100 + "bc"
        assert await repo.read_logs(session, job.id, after=99) == "abc"
        assert await repo.read_log_chunk(session, job.id, 100) == "bc"
        kinds = [(e.kind, e.data) for e in await repo.list_events(session, job.id) if e.kind == "logs"]
    assert kinds == [("logs", {"offset": 0, "length": 100}), ("logs", {"offset": 100, "length": 2})]


async def test_concurrent_log_appends_store_each_character_once(db: Database) -> None:
    job = await new_job(db)
    text = "line\n" * 40

    async def append(upto: int) -> None:
        async with db.session() as session:
            await repo.append_logs(session, job.id, text[:upto])
            await session.commit()

    await asyncio.gather(*(append(n) for n in (50, 100, 150, 200, 100, 200)))
    async with db.session() as session:
        assert await repo.read_logs(session, job.id) == text


async def test_prediction_id_is_recorded_even_after_a_cancel(db: Database) -> None:
    job = await new_job(db)
    await move(db, job.id, JobStatus.CANCELED)
    async with db.session() as session:
        assert await repo.record_prediction_id(session, job.id, "late-pred")
        assert await repo.record_prediction_id(session, job.id, "late-pred")  # the same id again: fine
        assert not await repo.record_prediction_id(session, job.id, "another")  # never replaced
        await session.commit()
        assert (await repo.require_job(session, job.id)).prediction_id == "late-pred"


async def test_fenced_writes_need_a_live_lease(db: Database) -> None:
    job = await new_job(db)
    async with db.session() as session:
        assert await repo.claim_job(session, job.id, "worker-a", 0.05)
        await session.commit()
    await asyncio.sleep(0.1)  # the lease runs out
    async with db.session() as session:
        assert await repo.claim_job(session, job.id, "worker-b", 30)
        await session.commit()
    async with db.session() as session:
        with pytest.raises(repo.LeaseLost):
            await repo.apply_status(session, job.id, JobStatus.PACKAGING, fence="worker-a")
        assert not await repo.set_fields(session, job.id, fence="worker-a", error="stale writer")
        row, changed = await repo.apply_status(session, job.id, JobStatus.PACKAGING, fence="worker-b")
        assert changed and row.status == "packaging"
        assert await repo.set_fields(session, job.id, fence="worker-b", error_hint="fresh")
        await session.commit()
        assert (await repo.require_job(session, job.id)).error is None


async def test_writes_while_a_status_leave_a_job_that_moved_on_as_it_is(db: Database) -> None:
    """The cost limit's canceller marks the jobs it listed as spending; one that succeeded since
    keeps no "canceled at the cost limit" error."""
    job = await new_job(db)
    await move(db, job.id, JobStatus.RUNNING)
    async with db.session() as session:
        assert await repo.set_fields(session, job.id, while_status=["queued", "running"], error_hint="a")
        await session.commit()
    await move(db, job.id, JobStatus.SUCCEEDED)
    async with db.session() as session:
        assert not await repo.set_fields(session, job.id, while_status=["queued", "running"], error="late")
        await session.commit()
        row = await repo.require_job(session, job.id)
    assert (row.status, row.error, row.error_hint) == ("succeeded", None, "a")


async def test_claim_due_jobs_takes_due_and_unclean_jobs_once(db: Database) -> None:
    due = await new_job(db)
    later = await new_job(db)
    finished = await new_job(db)
    await move(db, finished.id, JobStatus.SUCCEEDED)
    async with db.session() as session:
        await repo.set_fields(session, later.id, next_poll_at=datetime.now(UTC) + timedelta(hours=1))
        await session.commit()
    async with db.session() as session:
        claimed = {j.id for j in await repo.claim_due_jobs(session, "w1")}
        await session.commit()
    async with db.session() as session:
        again = await repo.claim_due_jobs(session, "w2")
        await session.commit()
    assert claimed == {due.id, finished.id}
    assert again == []  # w1's leases are still alive


async def test_list_filters_and_total(db: Database) -> None:
    first = await new_job(db, job_id="job_000000000000000001aaaaaaaa")
    await new_job(db, job_id="job_000000000000000002aaaaaaaa")
    await move(db, first.id, JobStatus.FAILED)
    async with db.session() as session:
        assert await repo.count_jobs(session) == 2
        assert await repo.count_jobs(session, status="failed") == 1
        assert [j.id for j in await repo.list_jobs(session, text="001")] == [first.id]
        assert await repo.list_jobs(session, text="%") == []  # wildcards are literal
        assert await repo.count_jobs(session, hardware="a100") == 0


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """Query plans are SQLite's (PostgreSQL plans by its statistics, which a test table lacks)."""
    database = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


async def plan_of(db: Database, run: Callable[[AsyncSession], Awaitable[Any]]) -> list[str]:
    """SQLite's plan for the first statement `run` sends."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.session() as session:
            await run(session)
            await session.rollback()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    statement, parameters = sent[0]
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
    return [row[3] for row in rows]


async def test_the_claim_reads_only_jobs_not_cleaned_up(sqlite_db: Database) -> None:
    active = await new_job(sqlite_db)
    finishing = await new_job(sqlite_db)
    done = await new_job(sqlite_db)
    await move(sqlite_db, finishing.id, JobStatus.FAILED)
    await move(sqlite_db, done.id, JobStatus.SUCCEEDED)
    async with sqlite_db.session() as session:
        await repo.set_fields(session, done.id, cleaned_at=datetime.now(UTC), next_poll_at=None)
        await session.commit()

    plan = await plan_of(sqlite_db, lambda session: repo.claim_due_jobs(session, "w1"))
    async with sqlite_db.session() as session:
        claimed = {job.id for job in await repo.claim_due_jobs(session, "w1")}

    # Not a walk over every finished job (the store's history), nor a sort of them.
    assert plan == ["SCAN jobs USING INDEX ix_jobs_due"]
    assert claimed == {active.id, finishing.id}


@pytest.mark.parametrize(
    ("filters", "index"),
    [({"status": "failed"}, "ix_jobs_status_id"), ({"hardware": "a100"}, "ix_jobs_hardware_id")],
)
async def test_a_filtered_page_is_read_in_order_from_an_index(
    sqlite_db: Database, filters: dict[str, str], index: str
) -> None:
    plan = await plan_of(sqlite_db, lambda session: repo.list_jobs(session, limit=51, **filters))
    assert plan == [f"SEARCH jobs USING INDEX {index} ({next(iter(filters))}=?)"]  # no TEMP B-TREE: no sort


async def test_list_rows_leave_the_spec_unloaded(db: Database) -> None:
    job = await new_job(db, spec={"inputs": {"config_json": "x" * 10_000}})
    async with db.session() as session:
        [row] = await repo.list_jobs(session)
        assert "spec" in inspect(row).unloaded
        with pytest.raises(InvalidRequestError, match="raiseload"):
            _ = row.spec
        assert (await repo.require_job(session, job.id)).spec == {"inputs": {"config_json": "x" * 10_000}}


async def test_a_finished_job_whose_clean_up_waits_is_not_claimed_before_its_time(db: Database) -> None:
    waiting = await new_job(db)
    await move(db, waiting.id, JobStatus.SUCCEEDED)
    async with db.session() as session:
        await repo.set_fields(session, waiting.id, next_poll_at=datetime.now(UTC) + timedelta(hours=1))
        await session.commit()
    async with db.session() as session:
        assert await repo.claim_due_jobs(session, "w1") == []  # not on every pass: at its time
        await repo.set_fields(session, waiting.id, next_poll_at=datetime.now(UTC) - timedelta(seconds=1))
        await session.commit()
    async with db.session() as session:
        assert [j.id for j in await repo.claim_due_jobs(session, "w1")] == [waiting.id]
