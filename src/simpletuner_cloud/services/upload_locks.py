"""One upload of an archive at a time across every server on the database: two jobs with the same
dataset would otherwise upload the same bytes twice. The lock is a row per sha256 with a holder and an
expiry in the table `upload_locks`; a crashed holder's lock simply runs out."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import delete, or_, update

from simpletuner_cloud.services.background import beside
from simpletuner_cloud.store.database import Database, dialect_insert
from simpletuner_cloud.store.tables import UploadLockRow, utcnow

POLL = 0.25


@contextlib.asynccontextmanager
async def upload_lock(
    database: Database, sha256: str, owner: str, lease_seconds: float, *, wait: bool = True
) -> AsyncIterator[bool]:
    """Held by one caller at a time, two callers in the same process included (each acquisition gets
    its own token under `owner`'s name). With `wait=False`, a lock held elsewhere is not waited for:
    the block runs at once with False (and holds nothing)."""
    holder = f"{owner[:48]}-{secrets.token_hex(6)}"
    while True:  # another server holds it: its upload finishes (or its lease runs out) soon
        if await _take(database, sha256, holder, lease_seconds):
            break
        if not wait:
            yield False
            return
        await asyncio.sleep(POLL)
    try:
        async with beside(_renew(database, sha256, holder, lease_seconds), name=f"upload-lock-{sha256[:12]}"):
            yield True
    finally:
        async with database.session() as session:
            await session.execute(
                delete(UploadLockRow).where(UploadLockRow.sha256 == sha256, UploadLockRow.holder == holder)
            )
            await session.commit()


async def _take(database: Database, sha256: str, holder: str, lease_seconds: float) -> bool:
    now = utcnow()
    until = now + timedelta(seconds=lease_seconds)
    async with database.session() as session:
        inserted = await session.execute(
            dialect_insert(session, UploadLockRow)
            .values(sha256=sha256, holder=holder, locked_until=until)
            .on_conflict_do_nothing(index_elements=["sha256"])
            .returning(UploadLockRow.sha256)
        )
        if inserted.scalar_one_or_none() is None:
            taken_over = await session.execute(
                update(UploadLockRow)
                .where(
                    UploadLockRow.sha256 == sha256,
                    or_(UploadLockRow.locked_until < now, UploadLockRow.holder == holder),
                )
                .values(holder=holder, locked_until=until)
            )
            if taken_over.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
        await session.commit()
        return True


async def _renew(database: Database, sha256: str, holder: str, lease_seconds: float) -> None:
    while True:
        await asyncio.sleep(lease_seconds / 3)
        async with database.session() as session:
            await session.execute(
                update(UploadLockRow)
                .where(UploadLockRow.sha256 == sha256, UploadLockRow.holder == holder)
                .values(locked_until=utcnow() + timedelta(seconds=lease_seconds))
            )
            await session.commit()
