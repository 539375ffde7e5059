"""Provider use cases: validate the token, save or delete it, list the trainer's versions, list
providers with their readiness, and read Replicate's status page. What outlives one request lives in
`ProviderRuntime` (`provider_runtime.py`)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.client import ReplicateClient
from simpletuner_cloud.replicate.errors import (
    TOKEN_INVALID_MESSAGE,
    TOKEN_MISSING_MESSAGE,
)
from simpletuner_cloud.replicate.factory import (
    mask_token,
    require_usable_token,
    resolve_token,
    token_format_error,
    token_format_problem,
)
from simpletuner_cloud.replicate.status_page import SystemStatus
from simpletuner_cloud.security.files import delete_secret_file, write_secret_file
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.provider_runtime import SINGLE_ATTEMPT, ProviderRuntime, TokenCheck
from simpletuner_cloud.services.provider_settings import (
    ReplicateSettings,
    load_replicate_settings,
    webhook_url,
    webhook_warning,
)
from simpletuner_cloud.services.provider_views import (
    AccountResponse,
    ProviderEntry,
    ProvidersResponse,
    SystemStatusResponse,
    TokenDeletedResponse,
    TokenSavedResponse,
    ValidateResponse,
    VersionEntry,
    VersionsResponse,
)
from simpletuner_cloud.settings import SANDBOX_BANNER, Settings

ENV_WINS_NOTE = "REPLICATE_API_TOKEN is set in the environment and takes precedence over the saved token."
# Validate and token saves wait at most this long in all (retries included), or less when
# `http_timeout` is shorter: a person clicking Validate should not wait two minutes for a hung Replicate.
VALIDATE_DEADLINE = 10.0
TIMEOUT_ERRORS = frozenset({"ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout"})
PIN_MISSING = (
    "The pinned version {pin} is not a version of {model} (or this account may not use it), so jobs "
    "cannot start with it: pin one of the versions listed, or set `version` to null for the latest."
)


def status_answer(status: SystemStatus) -> SystemStatusResponse:
    return SystemStatusResponse(
        indicator=status.indicator,
        description=status.description,
        reason=status.reason,
        components=status.components,
        incidents=status.incidents,
        source=status.source,
        checked_at=status.checked_at.isoformat(),
    )


async def system_status(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> SystemStatusResponse:
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


def provider_timeout(seconds: float) -> CloudError:
    return CloudError(
        f"Replicate did not answer within {seconds:g} s.",
        code="provider_timeout",
        hint="Replicate may be slow or unreachable from here: check https://replicate.statuspage.io/, "
        "your network and the proxy (`proxy_url` in the provider settings), then retry. `http_timeout` "
        f"sets how long to wait (validation waits at most {VALIDATE_DEADLINE:g} s).",
        details={"timeout_seconds": seconds},
    )


def validate_deadline(replicate: ReplicateSettings) -> float:
    return min(replicate.http_timeout, VALIDATE_DEADLINE)


async def _account(
    settings: Settings, runtime: ProviderRuntime, replicate: ReplicateSettings, token: str | None = None
) -> AccountResponse:
    """Who the token belongs to, within `validate_deadline` in all."""
    deadline = validate_deadline(replicate)
    try:
        async with asyncio.timeout(deadline):
            async with runtime.client(settings, replicate, token) as client:
                account = await client.account()
    except TimeoutError:
        raise provider_timeout(deadline) from None
    except CloudError as error:
        if error.code == "provider_unavailable" and error.details.get("network_error") in TIMEOUT_ERRORS:
            raise provider_timeout(deadline) from None
        if token and error.code == "token_invalid":
            runtime.remember_check(token, "invalid")
        raise await _with_status_page(error, settings, runtime, replicate) from None
    if token:
        runtime.remember_check(token, "valid")
    return AccountResponse(username=account.username, name=account.name, type=account.type)


async def validate_token(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> ValidateResponse:
    replicate = await load_replicate_settings(session, settings)
    token = resolve_token(settings, runtime.environ)
    value = require_usable_token(token)  # token_missing / token_invalid_format, before any request
    account = await _account(settings, runtime, replicate, value)  # token_invalid / provider_timeout
    return ValidateResponse(
        valid=True, account=account, token_source=token.source, token=token.masked, sandbox=settings.sandbox
    )


def check_token_format(raw: str) -> str:
    token = raw.strip()  # a token pasted from a terminal often carries a newline or spaces
    problem = token_format_problem(token)
    if problem is not None:
        raise token_format_error(problem)
    return token


async def save_token(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime, raw: str
) -> TokenSavedResponse:
    """Check the format, prove the token at Replicate, then write the 0600 file. Only the masked
    form ever comes back."""
    token = check_token_format(raw)
    replicate = await load_replicate_settings(session, settings)
    try:
        account = await _account(settings, runtime, replicate, token)
    except CloudError as error:
        if settings.sandbox and error.code == "token_invalid":
            raise CloudError(
                "Invalid token",
                code="token_invalid",
                hint="This server runs with --sandbox: the offline emulator accepts only its own token "
                "(SIMPLETUNER_SANDBOX_TOKEN). Restart without --sandbox to validate and save a real "
                "Replicate token.",
            ) from None
        raise
    write_secret_file(settings.replicate_token_path, token)
    active = resolve_token(settings, runtime.environ)
    note = None
    if active.source == "env":
        note = ENV_WINS_NOTE
    elif active.source == "sandbox":
        note = "Sandbox mode uses the sandbox token; the saved token is used without --sandbox."
    return TokenSavedResponse(
        saved=True, token=mask_token(token), account=account, token_source=active.source, note=note
    )


def delete_token(settings: Settings, runtime: ProviderRuntime) -> TokenDeletedResponse:
    deleted = delete_secret_file(settings.replicate_token_path)
    active = resolve_token(settings, runtime.environ)
    return TokenDeletedResponse(
        deleted=deleted,
        token_source=active.source,
        token=active.masked,
        note=ENV_WINS_NOTE.replace(" over the saved token", "") if active.source == "env" else None,
    )


async def list_versions(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> VersionsResponse:
    """Newest first; `selected` is the pin or else the latest. A pin that is not a version of the
    model (a typo, or the hardware and so the model changed since) is flagged, not an error: the
    list is what the person needs to choose another."""
    replicate = await load_replicate_settings(session, settings)
    model = replicate.trainer_model(load_hardware_catalogue(settings))
    pin = replicate.version
    try:
        async with runtime.client(settings, replicate) as client:
            found = await client.list_versions(model)
            if pin and pin not in [v.get("id") for v in found]:
                older = await _pinned_version(client, model, pin)
                found += [older] if older else []
    except CloudError as error:
        raise await _with_status_page(error, settings, runtime, replicate) from None
    ids = [v.get("id") for v in found]
    pin_exists = None if pin is None else pin in ids
    selected = (pin if pin_exists else None) if pin else (ids[0] if ids else None)
    versions = [
        VersionEntry(
            id=v["id"],
            created_at=v.get("created_at"),
            cog_version=v.get("cog_version"),
            selected=v.get("id") == selected,
        )
        for v in found
    ]
    return VersionsResponse(
        model=model,
        pinned=pin,
        pinned_exists=pin_exists,
        selected=selected,
        warning=PIN_MISSING.format(pin=pin, model=model) if pin_exists is False else None,
        versions=versions,
    )


async def _pinned_version(client: ReplicateClient, model: str, pin: str) -> dict[str, Any] | None:
    """A pin older than the pages listed, or None when Replicate does not know it for this model."""
    try:
        return await client.get_version(model, pin)
    except CloudError as error:
        if error.code in ("provider_not_found", "provider_invalid_input"):
            return None
        raise


async def _token_check(
    settings: Settings, runtime: ProviderRuntime, replicate: ReplicateSettings, token: str
) -> TokenCheck:
    """Does Replicate accept the token? Remembered (see CHECK_TTL); asked once, without retries and
    within `readiness_timeout`, so listing providers stays fast when Replicate is slow or down."""
    known = runtime.known_check(token)
    if known is not None:
        return known
    check: TokenCheck = "unknown"
    try:
        async with asyncio.timeout(runtime.readiness_timeout):
            async with runtime.client(settings, replicate, token, retry_policy=SINGLE_ATTEMPT) as client:
                await client.account()
        check = "valid"
    except CloudError as error:
        check = "invalid" if error.code == "token_invalid" else "unknown"
    except TimeoutError:
        pass
    runtime.remember_check(token, check)
    return check


async def list_providers(
    session: AsyncSession, settings: Settings, runtime: ProviderRuntime
) -> ProvidersResponse:
    """Readiness: a token is present and Replicate has not refused it (`token_check`); a public URL
    for webhooks is advised, not required."""
    replicate = await load_replicate_settings(session, settings)
    token = resolve_token(settings, runtime.environ)
    check: TokenCheck | None = None
    reason: str | None = TOKEN_MISSING_MESSAGE
    if token.value and token.problem:  # known at once: no need to ask Replicate
        check, reason = "invalid", token_format_error(token.problem, token.source).message
    elif token.value:
        check = await _token_check(settings, runtime, replicate, token.value)
        reason = TOKEN_INVALID_MESSAGE if check == "invalid" else None
    hook = webhook_url(settings, replicate)
    entry = ProviderEntry(
        id="replicate",
        name="Replicate",
        configured=token.value is not None,
        token_source=token.source,
        token_check=check,
        ready=reason is None,
        sandbox=settings.sandbox,
        banner=SANDBOX_BANNER if settings.sandbox else None,
        webhook_url=hook,
        hardware=replicate.hardware,
        model=replicate.trainer_model(load_hardware_catalogue(settings)),
        not_ready_reason=reason,
        warning=webhook_warning(settings, replicate),
    )
    return ProvidersResponse(providers=[entry])
