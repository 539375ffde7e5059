"""Per-provider settings (a JSON object per provider, e.g. `replicate`). Secrets never live here:
the Replicate token has its own 0600 file, and credentials inside settings (the proxy password) live in
the secret store (`security/secrets.py`), named here by reference only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.store.database import dialect_insert
from simpletuner_cloud.store.tables import ProviderSettingsRow, utcnow


async def get_provider_settings(session: AsyncSession, provider: str) -> dict[str, Any]:
    """The saved settings, or `{}` when none were saved (or the row holds something else than an
    object, which the caller then treats as nothing saved)."""
    query = select(ProviderSettingsRow.settings).where(ProviderSettingsRow.provider == provider)
    saved = (await session.execute(query)).scalar_one_or_none()
    return dict(saved) if isinstance(saved, dict) else {}


async def save_provider_settings(
    session: AsyncSession, provider: str, settings: dict[str, Any], *, at: datetime | None = None
) -> None:
    """Replace the whole object (callers merge first); an upsert, so concurrent saves never collide."""
    now = at or utcnow()
    statement = dialect_insert(session, ProviderSettingsRow).values(
        provider=provider, settings=settings, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["provider"], set_={"settings": statement.excluded.settings, "updated_at": now}
    )
    await session.execute(statement)
