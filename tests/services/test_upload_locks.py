"""The upload lock: one holder at a time; a caller that must not wait (the clean-up, which comes back
later) runs at once with False while another holds it, and holds nothing."""

from __future__ import annotations

from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.store.database import Database

SHA = "2" * 64


async def test_a_caller_that_does_not_wait_is_told_the_lock_is_held(db: Database) -> None:
    async with upload_lock(db, SHA, "uploader", 30) as first:
        assert first is True
        async with upload_lock(db, SHA, "clean-up", 30, wait=False) as second:
            assert second is False
        async with upload_lock(db, SHA, "clean-up", 30, wait=False) as again:
            assert again is False  # the refused one took nothing, released nothing
    async with upload_lock(db, SHA, "clean-up", 30, wait=False) as free:
        assert free is True
