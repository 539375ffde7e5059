"""Provider settings round-trip as a JSON object and are replaced whole."""

from __future__ import annotations

import asyncio

from simpletuner_cloud.store import Database
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings


async def test_settings_round_trip_and_replace(db: Database) -> None:
    settings = {
        "hardware": "l40s",
        "cost_limit": {"usd": 25.5, "period": "month", "action": "block"},
        "on": True,
    }
    async with db.session() as session:
        assert await get_provider_settings(session, "replicate") == {}
        await save_provider_settings(session, "replicate", settings)
        await session.commit()
    async with db.session() as session:
        assert await get_provider_settings(session, "replicate") == settings
        await save_provider_settings(session, "replicate", {"hardware": "h100"})
        await session.commit()
    async with db.session() as session:
        assert await get_provider_settings(session, "replicate") == {"hardware": "h100"}
        assert await get_provider_settings(session, "other") == {}


async def test_concurrent_saves_do_not_collide(db: Database) -> None:
    async def save(n: int) -> None:
        async with db.session() as session:
            await save_provider_settings(session, "replicate", {"n": n})
            await session.commit()

    await asyncio.gather(*(save(n) for n in range(4)))
    async with db.session() as session:
        assert (await get_provider_settings(session, "replicate"))["n"] in range(4)
