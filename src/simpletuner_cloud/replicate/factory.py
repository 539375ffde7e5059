"""The one place that reads the environment for the provider: the token (`REPLICATE_API_TOKEN` wins,
then the saved 0600 file, or the sandbox's token in sandbox mode) and the proxy variables. Everything
below receives plain values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from simpletuner_cloud.replicate.client import ReplicateClient, Timeouts
from simpletuner_cloud.replicate.errors import token_invalid, token_missing
from simpletuner_cloud.replicate.proxies import ProxyConfig, proxy_config
from simpletuner_cloud.security.files import read_secret_file
from simpletuner_cloud.settings import Settings

TOKEN_ENV = "REPLICATE_API_TOKEN"  # noqa: S105 (a variable name)
TokenSource = Literal["env", "saved", "sandbox"]
UNUSABLE_TOKEN = "the token contains spaces, line breaks or non-ASCII characters"  # noqa: S105
MIN_SECRET_TO_SHOW_TAIL = 16  # Replicate's tokens have 37 secret characters after `r8_`


@dataclass(frozen=True)
class ResolvedToken:
    value: str | None
    source: TokenSource | None

    @property
    def masked(self) -> str | None:
        return mask_token(self.value) if self.value else None

    def __repr__(self) -> str:  # dataclass repr would print the token
        return f"ResolvedToken(source={self.source!r}, masked={self.masked!r})"


def mask_token(token: str) -> str:
    """`r8_...abcd`: enough to tell two tokens apart, never enough to use one. Only the public `r8_`
    prefix and the last 4 characters show; a short or prefix-less token shows less."""
    token = token.strip()
    prefix = "r8_" if token.startswith("r8_") else ""
    secret = token[len(prefix) :]
    return f"{prefix}...{secret[-4:]}" if len(secret) >= MIN_SECRET_TO_SHOW_TAIL else f"{prefix}..."


def header_safe(token: str) -> bool:
    """What an Authorization header can carry: printable ASCII, no spaces or line breaks inside."""
    return bool(token) and token.isascii() and token.isprintable() and not any(c.isspace() for c in token)


def sandbox_base_url(settings: Settings) -> str:
    # Same formula as `api.app.sandbox_base_url` (the app mounts the sandbox there); this layer may not
    # import the API layer, and a test keeps the two equal.
    return f"http://127.0.0.1:{settings.port}/sandbox"


def replicate_base_url(settings: Settings) -> str:
    return sandbox_base_url(settings) if settings.sandbox else settings.replicate_base_url.rstrip("/")


def status_page_base_url(settings: Settings) -> str:
    return (
        f"{sandbox_base_url(settings)}/status" if settings.sandbox else settings.status_page_url.rstrip("/")
    )


def default_public_url(settings: Settings) -> str | None:
    """In sandbox mode the webhooks come from this machine, so the server's loopback address works."""
    return f"http://127.0.0.1:{settings.port}" if settings.sandbox else None


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def resolve_token(settings: Settings, environ: Mapping[str, str] | None = None) -> ResolvedToken:
    if settings.sandbox:
        return ResolvedToken(settings.sandbox_token, "sandbox")
    from_env = (environment(environ).get(TOKEN_ENV) or "").strip()
    if from_env:
        return ResolvedToken(from_env, "env")
    saved = read_secret_file(settings.replicate_token_path)
    if saved:
        return ResolvedToken(saved, "saved")
    return ResolvedToken(None, None)


def resolve_proxy(proxy_url: str | None, environ: Mapping[str, str] | None = None) -> ProxyConfig:
    return proxy_config(proxy_url, environment(environ))


def build_replicate_client(
    settings: Settings,
    *,
    proxy_url: str | None = None,
    http_timeout: float = 30.0,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    **seams: Any,
) -> ReplicateClient:
    """A client for the configured Replicate (or the sandbox). `token` overrides the resolved one
    (to validate a token before saving it). `seams` pass through to `ReplicateClient`: transport,
    retry_policy, breaker, sleep, rng. Raises `token_missing` when there is no token at all."""
    resolved = resolve_token(settings, environ) if token is None else ResolvedToken(token, None)
    if not resolved.value:
        raise token_missing()
    if not header_safe(resolved.value):  # else httpx fails deep inside with the token in hand
        raise token_invalid({"reason": UNUSABLE_TOKEN})
    value = resolved.value
    return ReplicateClient(
        base_url=replicate_base_url(settings),
        token=value,
        timeouts=Timeouts.from_total(http_timeout),
        proxy=resolve_proxy(proxy_url, environ),
        **seams,
    )
