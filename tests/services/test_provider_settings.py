"""The settings model on its own: field validators, stored values that no longer validate, defaults;
two saves at once each keep their change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services import provider_settings
from simpletuner_cloud.services.provider_settings import (
    ReplicateSettings,
    effective_public_url,
    load_replicate_settings,
    update_replicate_settings,
    webhook_url,
)
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings
from tests.support.slowed import pause_after


@pytest.fixture
async def database(state_root: Any) -> AsyncIterator[Database]:
    db = Database(load_settings().effective_database_url)
    await db.migrate()
    yield db
    await db.dispose()


def test_defaults() -> None:
    settings = ReplicateSettings()
    assert (settings.hardware, settings.require_signature, settings.data_consent) == ("l40s", True, "ask")
    assert settings.cost_limit.domain().active is False


def test_sandbox_public_url_defaults_to_loopback() -> None:
    sandboxed = load_settings(sandbox=True, port=8123)
    assert effective_public_url(sandboxed, ReplicateSettings()) == "http://127.0.0.1:8123"
    assert webhook_url(sandboxed, ReplicateSettings()) == "http://127.0.0.1:8123/api/webhooks/replicate"
    assert webhook_url(load_settings(), ReplicateSettings()) is None
    own = ReplicateSettings(public_url="https://a.example.com")
    assert webhook_url(sandboxed, own) == "https://a.example.com/api/webhooks/replicate"


@pytest.mark.parametrize(
    "value", ["https://x.example.com?a=1", "https://x.example.com/#f", "x.example.com", "https:///nohost"]
)
def test_public_url_refusals(value: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        ReplicateSettings(public_url=value)


def test_version_is_lowercased_and_socks_proxies_accepted() -> None:
    settings = ReplicateSettings(version="A" * 64, proxy_url="socks5://127.0.0.1:1080")
    assert settings.version == "a" * 64


async def test_an_invalid_stored_value_falls_back_to_its_default(database: Database) -> None:
    settings = load_settings()
    async with database.session() as session:
        await save_provider_settings(session, "replicate", {"hardware": "gone", "require_signature": False})
        await session.commit()
        loaded = await load_replicate_settings(session, settings)
    assert (loaded.hardware, loaded.require_signature) == ("l40s", False)


async def test_update_is_stored_as_plain_json(database: Database) -> None:
    settings = load_settings()
    async with database.session() as session:
        await update_replicate_settings(session, settings, {"cost_limit": {"enabled": True, "amount": 5}})
        stored = await get_provider_settings(session, "replicate")
        with pytest.raises(CloudError) as caught:
            await update_replicate_settings(session, settings, {"cost_limit": {"amount": None}})
    # money is stored exact, as a decimal string
    assert stored["cost_limit"] == {
        "enabled": True,
        "amount": "5",
        "period": "monthly",
        "action": "warn",
        "cancel_running_at_limit": False,
        "cancel_on": "accrued",
        "time_zone": None,
    }
    assert caught.value.code == "validation_error"
    assert caught.value.details["fields"][0]["field"] == "cost_limit"


async def test_two_saves_at_once_each_keep_their_change(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each save read, merged and wrote the whole row: two at once (the Cloud tab and the CLI, two
    servers) lost one change, a cost limit say."""
    settings = load_settings()
    pause_after(monkeypatch, provider_settings, "load_replicate_settings")  # the other save reads now

    async def save(changes: dict[str, Any]) -> None:
        async with db.session() as session:
            await update_replicate_settings(session, settings, changes)

    await asyncio.gather(save({"cost_limit": {"enabled": True, "amount": 5}}), save({"http_timeout": 42}))
    async with db.session() as session:
        stored = await get_provider_settings(session, "replicate")
    assert (stored["cost_limit"]["amount"], stored["http_timeout"]) == ("5", 42)
