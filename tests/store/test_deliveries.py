"""The delivery ledger's repository on SQLite and PostgreSQL: rows per job, the lease claim (due
checks and deliveries whose job just ended; two holders never share one), state compare-and-set,
artifacts replaced in place, and deletion with the job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from simpletuner_cloud.store import Database
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store.jobs import apply_status, create_job
from simpletuner_cloud.store.tables import JobRow, utcnow


async def job_with(db: Database, *destinations: str, status: str = "running") -> str:
    async with db.session() as session:
        job, _ = await create_job(session, config_name="c", hardware="l40s", model="m")
        await apply_status(session, job.id, status)
        await ledger.create_deliveries(session, job.id, [(d, {"where": d}) for d in destinations])
        await session.commit()
        return job.id


async def claim(db: Database, holder: str) -> list[str]:
    async with db.session() as session:
        rows = await ledger.claim_due_deliveries(session, holder, limit=50, lease_seconds=60)
        await session.commit()
        return sorted(f"{row.job_id}:{row.destination}" for row in rows)


async def test_new_deliveries_are_due_at_once_and_leased_to_one_holder(db: Database) -> None:
    job_id = await job_with(db, "local", "hub")
    assert await claim(db, "a") == [f"{job_id}:hub", f"{job_id}:local"]
    assert await claim(db, "b") == []  # leased to a
    assert await claim(db, "a") == [f"{job_id}:hub", f"{job_id}:local"]  # a renews its own


async def test_concurrent_claims_get_disjoint_deliveries(db: Database) -> None:
    for _ in range(10):
        await job_with(db, "local")
    first, second = await asyncio.gather(claim(db, "a"), claim(db, "b"))
    assert not set(first) & set(second) and len(first) + len(second) == 10


async def test_a_waiting_delivery_is_claimed_again_once_its_job_ends(db: Database) -> None:
    job_id = await job_with(db, "local")
    async with db.session() as session:
        [row] = await ledger.list_deliveries(session, job_id)
        assert await ledger.update_delivery(session, row.id, next_check_at=None)
        await session.commit()
    assert await claim(db, "a") == []  # the job still runs: nothing to check
    async with db.session() as session:
        await apply_status(session, job_id, "succeeded")
        await session.commit()
    assert await claim(db, "a") == [f"{job_id}:local"]


async def test_state_moves_only_from_the_expected_states_and_only_under_the_lease(db: Database) -> None:
    job_id = await job_with(db, "local")
    async with db.session() as session:
        [row] = await ledger.list_deliveries(session, job_id)
        assert await ledger.update_delivery(session, row.id, from_states=("pending",), state="receiving")
        assert not await ledger.update_delivery(session, row.id, from_states=("pending",), state="receiving")
        assert not await ledger.update_delivery(session, row.id, fence="nobody", state="verified")
        await session.commit()
    await claim(db, "a")
    async with db.session() as session:
        assert await ledger.update_delivery(session, row.id, fence="a", state="verified")
        await ledger.release_delivery(session, row.id, "a")
        await session.commit()
        fresh = await ledger.get_delivery(session, row.id)
    assert fresh is not None and (fresh.state, fresh.lock_token) == ("verified", None)


async def test_artifacts_are_recorded_replaced_and_deleted_with_the_job(db: Database) -> None:
    job_id = await job_with(db, "local")
    async with db.session() as session:
        [row] = await ledger.list_deliveries(session, job_id)
        common = {"kind": "checkpoint", "step": 10, "location": "/x"}
        await ledger.record_artifact(
            session, row.id, job_id, "a.safetensors", size=1, sha256="1", etag="e1", **common
        )
        await ledger.record_artifact(
            session, row.id, job_id, "a.safetensors", size=2, sha256="2", etag="e2", **common
        )
        await ledger.record_artifact(
            session, row.id, job_id, "b.png", size=3, kind="validation_image", step=10, location="/y"
        )
        await session.commit()
        listed = {a.name: (a.size, a.etag) for a in await ledger.list_artifacts(session, job_id=job_id)}
        assert listed == {"a.safetensors": (2, "e2"), "b.png": (3, None)}
        assert await ledger.artifact_etags(session, row.id, ["a.safetensors", "b.png", "c"]) == {
            "a.safetensors": "e2"
        }
        await ledger.replace_artifacts(
            session, row.id, job_id, [{"name": "c", "kind": "other", "size": 0, "location": "/z"}]
        )
        assert await ledger.delete_artifact(session, row.id, "c") and not await ledger.delete_artifact(
            session, row.id, "c"
        )
        await session.commit()
        assert await ledger.list_artifacts(session, job_id=job_id) == []
        await ledger.record_artifact(session, row.id, job_id, "d", kind="other", size=0, location="/d")
        await session.commit()
    async with db.session() as session:
        await session.delete(await session.get(JobRow, job_id))
        await session.commit()
        assert await ledger.list_deliveries(session, job_id) == []
        assert await ledger.list_artifacts(session, job_id=job_id) == []


async def test_an_expired_lease_is_taken_over(db: Database) -> None:
    job_id = await job_with(db, "hub")
    async with db.session() as session:
        await ledger.claim_due_deliveries(
            session, "a", limit=5, lease_seconds=60, now=utcnow() - timedelta(minutes=5)
        )
        await session.commit()
    assert await claim(db, "b") == [f"{job_id}:hub"]
