"""The publishing settings' checks: the S3 test button (write, read back, delete with boto3) and the
Hub token check (whoami), each answering in the user's words, offline included."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import anyio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.external_s3 import S3Target, S3TestView, missing_keys, test_bucket
from simpletuner_cloud.services.hugging_face import HubCheckView, check_token
from simpletuner_cloud.services.provider_settings import settings_error
from simpletuner_cloud.services.publishing import Publishing, S3Publishing, load_publishing
from simpletuner_cloud.settings import Settings


def s3_target(publishing: Publishing, s3: S3Publishing | None = None) -> S3Target:
    """The configured bucket with its saved keys; refuses when the bucket or a key is missing."""
    s3 = s3 or publishing.settings.s3
    if not s3.bucket:
        raise CloudError(
            "No S3 bucket is configured.",
            code="s3_not_configured",
            hint='Set one in Publishing: PUT /api/cloud/publishing with {"s3": {"bucket": "my-bucket", '
            '"region": "us-east-1", "endpoint_url": "https://..."}} (no endpoint_url for AWS itself).',
        )
    if not publishing.s3_access_key or not publishing.s3_secret_key:
        raise missing_keys()
    return S3Target(
        bucket=s3.bucket,
        region=s3.region,
        prefix=s3.prefix,
        access_key=publishing.s3_access_key,
        secret_key=publishing.s3_secret_key,
        endpoint_url=s3.endpoint_url,
        public_base_url=s3.public_base_url,
    )


async def test_s3(
    session: AsyncSession,
    settings: Settings,
    changes: dict[str, Any],
    environ: Mapping[str, str] | None = None,
) -> S3TestView:
    """Test the saved S3 settings, or these `changes` over them (to try before saving): the same
    keys as `{"s3": {...}}` of a PUT, keys included, read as a PUT reads them. A key left out keeps
    its saved value; `null` is what saving it would give (the default: no endpoint is AWS S3
    itself; no key is none), so the test is of what the form would save, not of what was saved."""
    publishing = await load_publishing(session, settings, environ)
    await session.rollback()  # nothing is written; no transaction stays open across the network calls
    secrets = {name: changes.pop(name) for name in ("access_key", "secret_key") if name in changes}
    merged = publishing.settings.s3.model_dump()
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    try:
        s3 = S3Publishing.model_validate(merged)
    except ValidationError as exc:
        raise settings_error(exc) from None

    def key(name: str, saved: str | None) -> str | None:
        return (secrets[name] or "").strip() or None if name in secrets else saved

    publishing = replace(
        publishing,
        s3_access_key=key("access_key", publishing.s3_access_key),
        s3_secret_key=key("secret_key", publishing.s3_secret_key),
    )
    target = s3_target(publishing, s3)
    return await anyio.to_thread.run_sync(test_bucket, target)


async def test_hub_token(
    session: AsyncSession,
    settings: Settings,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> HubCheckView:
    """whoami with this token, or the one jobs would use (HF_TOKEN, else the saved one)."""
    publishing = await load_publishing(session, settings, environ)
    await session.rollback()
    chosen = (token or "").strip() or publishing.hf_token
    return await anyio.to_thread.run_sync(check_token, publishing.hub_endpoint, chosen)
