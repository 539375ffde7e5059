"""Uploaded dataset archives: reuse one that Replicate still holds (same sha256, not expiring soon)
instead of uploading the same bytes again; remember deletions done during clean-up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.store.tables import UploadRow, new_upload_id, utcnow


async def record_upload(
    session: AsyncSession,
    *,
    sha256: str,
    size: int,
    replicate_file_id: str | None,
    url: str | None,
    expires_at: datetime | None,
    metadata: dict[str, Any] | None = None,
    upload_id: str | None = None,
    created_at: datetime | None = None,
) -> UploadRow:
    upload = UploadRow(
        id=upload_id or new_upload_id(),
        sha256=sha256,
        size=size,
        replicate_file_id=replicate_file_id,
        url=url,
        expires_at=expires_at,
        metadata_=metadata,
        created_at=created_at or utcnow(),
    )
    session.add(upload)
    await session.flush()
    return upload


async def get_upload(session: AsyncSession, upload_id: str) -> UploadRow | None:
    return await session.get(UploadRow, upload_id)


async def find_reusable_upload(
    session: AsyncSession, sha256: str, now: datetime, min_remaining_seconds: float
) -> UploadRow | None:
    """The live upload of these bytes that stays valid longest, if it outlives the margin.

    An upload without a known `expires_at` is never reused: Replicate always states one, so a
    missing value means the record is incomplete."""
    query = (
        select(UploadRow)
        .where(
            UploadRow.sha256 == sha256,
            UploadRow.deleted_at.is_(None),
            UploadRow.replicate_file_id.is_not(None),
            UploadRow.url.is_not(None),
            UploadRow.expires_at > now + timedelta(seconds=min_remaining_seconds),
        )
        .order_by(UploadRow.expires_at.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def mark_upload_deleted(session: AsyncSession, upload_id: str, *, at: datetime | None = None) -> bool:
    """True when this call marked it; False when unknown or already marked (deleting is idempotent)."""
    statement = (
        update(UploadRow)
        .where(UploadRow.id == upload_id, UploadRow.deleted_at.is_(None))
        .values(deleted_at=at or utcnow())
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).rowcount == 1  # type: ignore[attr-defined]
