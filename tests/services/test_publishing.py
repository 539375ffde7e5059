"""Publishing settings saves: two at once (the Cloud tab and the CLI, two servers) each keep their
change; each used to read, merge and write the whole row, and the later write dropped the other's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simpletuner_cloud.services import publishing
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.provider_settings import get_provider_settings
from tests.support.slowed import pause_after


async def test_two_saves_at_once_each_keep_their_change(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pause_after(monkeypatch, publishing, "get_provider_settings")  # the other save reads now

    async def save(changes: dict[str, Any]) -> None:
        async with db.session() as session:
            await publishing.update_publishing(session, load_settings(), changes)

    await asyncio.gather(save({"hub": {"hub_model_id": "me/my-lora"}}), save({"s3": {"bucket": "my-bucket"}}))
    async with db.session() as session:
        stored = await get_provider_settings(session, publishing.ROW)
    assert (stored["hub"]["hub_model_id"], stored["s3"]["bucket"]) == ("me/my-lora", "my-bucket")
