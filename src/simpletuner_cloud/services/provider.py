"""Provider use cases: validate the token, save or delete it, list the trainer's versions, list
providers with their readiness, and read Replicate's status page. `ProviderRuntime` holds what must
outlive one request (the circuit breaker, the status page cache) and the test seams."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.client import USER_AGENT, ReplicateClient
from simpletuner_cloud.replicate.errors import TOKEN_INVALID_HINT
from simpletuner_cloud.replicate.factory import (
    build_replicate_client,
    mask_token,
    resolve_proxy,
    resolve_token,
    status_page_base_url,
)
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy, Sleep
from simpletuner_cloud.replicate.status_page import StatusPageReader, SystemStatus
from simpletuner_cloud.security.files import delete_secret_file, write_secret_file
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.provider_settings import (
    ReplicateSettings,
    load_replicate_settings,
    webhook_url,
)
from simpletuner_cloud.settings import SANDBOX_BANNER, Settings

ENV_WINS_NOTE = "REPLICATE_API_TOKEN is set in the environment and takes precedence over the saved token."


@dataclass
class ProviderRuntime:
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    transport: httpx.AsyncBaseTransport | None = None  # unit seam; None is the real network
    environ: Mapping[str, str] | None = None  # None is os.environ, read by the factory only
    status_page: StatusPageReader | None = None
    _status_key: tuple[str, object] | None = None

    def client(
        self, settings: Settings, replicate: ReplicateSettings, token: str | None = None
    ) -> ReplicateClient:
        return build_replicate_client(
            settings,
            proxy_url=replicate.proxy_url,
            http_timeout=replicate.http_timeout,
            token=token,
            environ=self.environ,
            transport=self.transport,
            retry_policy=self.retry_policy,
            breaker=self.breaker,
            sleep=self.sleep,
        )

    def status_reader(self, settings: Settings, replicate: ReplicateSettings) -> StatusPageReader:
        """One cached reader; rebuilt only when its address or proxy changes (a test may also
        install its own reader, which is then kept)."""
        proxy = resolve_proxy(replicate.proxy_url, self.environ)
        key = (status_page_base_url(settings), proxy)
        if self.status_page is None or (self._status_key is not None and self._status_key != key):
            self.status_page = StatusPageReader(key[0], proxy=proxy, user_agent=USER_AGENT)
            self._status_key = key
        return self.status_page


def status_answer(status: SystemStatus) -> dict[str, Any]:
    return {
        "indicator": status.indicator,
        "description": status.description,
        "reason": status.reason,
        "components": status.components,
        "incidents": status.incidents,
        "source": status.source,
        "checked_at": status.checked_at.isoformat(),
    }


async def system_status(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> dict[str, Any]:
    replicate = await load_replicate_settings(session, settings)
    return status_answer(await runtime.status_reader(settings, replicate).status())


async def _with_status_page(
    error: CloudError, settings: Settings, runtime: ProviderRuntime, replicate: ReplicateSettings
) -> CloudError:
    """An outage message says what Replicate's own status page says, when it can be read."""
    if error.code != "provider_unavailable":
        return error
    status = await runtime.status_reader(settings, replicate).status()
    error.details["status_page"] = {"indicator": status.indicator, "description": status.description}
    if status.known:
        error.message += f" Replicate's status page says: {status.description} ({status.indicator})."
    return error


async def _account(
    settings: Settings, runtime: ProviderRuntime, replicate: ReplicateSettings, token: str | None = None
) -> dict[str, Any]:
    try:
        async with runtime.client(settings, replicate, token) as client:
            account = await client.account()
    except CloudError as error:
        raise await _with_status_page(error, settings, runtime, replicate) from None
    return {"username": account.username, "name": account.name, "type": account.type}


async def validate_token(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> dict[str, Any]:
    replicate = await load_replicate_settings(session, settings)
    token = resolve_token(settings, runtime.environ)
    account = await _account(settings, runtime, replicate)  # raises token_missing / token_invalid
    return {
        "valid": True,
        "account": account,
        "token_source": token.source,
        "token": token.masked,
        "sandbox": settings.sandbox,
    }


def check_token_format(raw: str) -> str:
    token = raw.strip()  # a token pasted from a terminal often carries a newline or spaces
    if not token.startswith("r8_") or any(ch.isspace() for ch in token):
        raise CloudError(
            "That does not look like a Replicate API token (they start with r8_).",
            code="token_invalid_format",
            hint=TOKEN_INVALID_HINT,
        )
    return token


async def save_token(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime, raw: str
) -> dict[str, Any]:
    """Check the format, prove the token at Replicate, then write the 0600 file. Only the masked
    form ever comes back."""
    token = check_token_format(raw)
    replicate = await load_replicate_settings(session, settings)
    account = await _account(settings, runtime, replicate, token)
    write_secret_file(settings.replicate_token_path, token)
    active = resolve_token(settings, runtime.environ)
    answer: dict[str, Any] = {
        "saved": True,
        "token": mask_token(token),
        "account": account,
        "token_source": active.source,
        "note": None,
    }
    if active.source == "env":
        answer["note"] = ENV_WINS_NOTE
    elif active.source == "sandbox":
        answer["note"] = "Sandbox mode uses the sandbox token; the saved token is used without --sandbox."
    return answer


def delete_token(settings: Settings, runtime: ProviderRuntime) -> dict[str, Any]:
    deleted = delete_secret_file(settings.replicate_token_path)
    active = resolve_token(settings, runtime.environ)
    return {
        "deleted": deleted,
        "token_source": active.source,
        "token": active.masked,
        "note": ENV_WINS_NOTE.replace(" over the saved token", "") if active.source == "env" else None,
    }


async def list_versions(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> dict[str, Any]:
    replicate = await load_replicate_settings(session, settings)
    model = replicate.trainer_model(load_hardware_catalogue(settings))
    try:
        async with runtime.client(settings, replicate) as client:
            found = await client.list_versions(model)
            ids = [v.get("id") for v in found]
            if replicate.version and replicate.version not in ids:
                found.append(await client.get_version(model, replicate.version))  # raises not_found
    except CloudError as error:
        raise await _with_status_page(error, settings, runtime, replicate) from None
    versions = [
        {"id": v.get("id"), "created_at": v.get("created_at"), "cog_version": v.get("cog_version")}
        for v in found
    ]
    selected = replicate.version or (versions[0]["id"] if versions else None)
    for version in versions:
        version["selected"] = version["id"] == selected
    return {"model": model, "pinned": replicate.version, "selected": selected, "versions": versions}


async def list_providers(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> dict[str, Any]:
    """Readiness without calling Replicate: a token is present and, for webhooks, a public URL."""
    replicate = await load_replicate_settings(session, settings)
    token = resolve_token(settings, runtime.environ)
    hook = webhook_url(settings, replicate)
    entry: dict[str, Any] = {
        "id": "replicate",
        "name": "Replicate",
        "configured": token.value is not None,
        "token_source": token.source,
        "ready": token.value is not None,
        "sandbox": settings.sandbox,
        "banner": SANDBOX_BANNER if settings.sandbox else None,
        "webhook_url": hook,
        "hardware": replicate.hardware,
        "model": replicate.trainer_model(load_hardware_catalogue(settings)),
        "not_ready_reason": None if token.value else "REPLICATE_API_TOKEN not set",
        "warning": None if hook else "No public URL: jobs are followed by polling until you set one.",
    }
    return {"providers": [entry]}
