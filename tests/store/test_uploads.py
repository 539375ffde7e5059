"""Uploads are reused by sha256 while Replicate still holds them long enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simpletuner_cloud.store import Database
from simpletuner_cloud.store.uploads import (
    find_reusable_upload,
    get_upload,
    mark_upload_deleted,
    record_upload,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 64


async def test_record_and_reuse_by_sha256(db: Database) -> None:
    async with db.session() as session:
        upload = await record_upload(
            session,
            sha256=SHA,
            size=123_456_789_012,
            replicate_file_id="file_1",
            url="https://api.replicate.com/v1/files/file_1",
            expires_at=NOW + timedelta(hours=24),
            metadata={"client_ref": "abc", "files": 12},
            created_at=NOW,
        )
        await session.commit()
    assert upload.id.startswith("upl_")
    async with db.session() as session:
        found = await find_reusable_upload(session, SHA, NOW, 3600)
        assert await find_reusable_upload(session, "b" * 64, NOW, 3600) is None
        loaded = await get_upload(session, upload.id)
    assert found is not None and found.id == upload.id
    assert loaded is not None
    assert loaded.size == 123_456_789_012 and loaded.metadata_ == {"client_ref": "abc", "files": 12}
    assert loaded.expires_at == NOW + timedelta(hours=24) and loaded.created_at == NOW


async def test_expiring_soon_expired_incomplete_or_deleted_is_not_reused(db: Database) -> None:
    async with db.session() as session:
        soon = await record_upload(
            session,
            sha256=SHA,
            size=1,
            replicate_file_id="f1",
            url="u1",
            expires_at=NOW + timedelta(minutes=30),
        )
        await record_upload(
            session,
            sha256=SHA,
            size=1,
            replicate_file_id="f0",
            url="u0",
            expires_at=NOW - timedelta(minutes=1),
        )
        await record_upload(session, sha256=SHA, size=1, replicate_file_id=None, url=None, expires_at=None)
        await record_upload(session, sha256=SHA, size=1, replicate_file_id="f9", url="u9", expires_at=None)
        await session.commit()
    async with db.session() as session:
        assert await find_reusable_upload(session, SHA, NOW, 3600) is None
        assert (await find_reusable_upload(session, SHA, NOW, 600)).id == soon.id  # type: ignore[union-attr]
        assert await mark_upload_deleted(session, soon.id, at=NOW)
        assert not await mark_upload_deleted(session, soon.id)  # idempotent
        assert not await mark_upload_deleted(session, "upl_missing")
        await session.commit()
    async with db.session() as session:
        assert await find_reusable_upload(session, SHA, NOW, 600) is None
        deleted = await get_upload(session, soon.id)
    assert deleted is not None and deleted.deleted_at == NOW


async def test_the_longest_lived_copy_wins(db: Database) -> None:
    async with db.session() as session:
        for hours in (2, 20, 5):
            await record_upload(
                session,
                sha256=SHA,
                size=1,
                replicate_file_id=f"f{hours}",
                url=f"u{hours}",
                expires_at=NOW + timedelta(hours=hours),
            )
        await session.commit()
        best = await find_reusable_upload(session, SHA, NOW, 60)
    assert best is not None and best.replicate_file_id == "f20"
