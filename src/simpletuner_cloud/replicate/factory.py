"""The one place that reads the environment for the provider: the token (`REPLICATE_API_TOKEN` wins,
then the saved 0600 file, or the sandbox's token in sandbox mode) and the proxy variables. Everything
below receives plain values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.client import ReplicateClient, Timeouts
from simpletuner_cloud.replicate.errors import TOKEN_INVALID_HINT, token_missing
from simpletuner_cloud.replicate.proxies import ProxyConfig, proxy_config
from simpletuner_cloud.security.files import read_secret_file
from simpletuner_cloud.settings import Settings

TOKEN_ENV = "REPLICATE_API_TOKEN"  # noqa: S105 (a variable name)
TokenSource = Literal["env", "saved", "sandbox"]
MIN_SECRET_TO_SHOW_TAIL = 16  # Replicate's tokens have 37 secret characters after `r8_`
# Replicate's tokens are 40 characters; a longer value is a paste gone wrong, and it would be sent
# as a header with every request.
MAX_TOKEN_LENGTH = 128
TOKEN_PREFIX = "r8_"  # noqa: S105 (public)
NO_PREFIX = "Token must start with r8_."
UNUSABLE_TOKEN = "Token must not contain spaces, line breaks or non-ASCII characters."  # noqa: S105
ENV_TOKEN_HINT = (
    f'Fix or unset {TOKEN_ENV} and restart simpletuner server (export {TOKEN_ENV}="r8_..."); '
    "copy the whole token from https://replicate.com/account/api-tokens."
)


@dataclass(frozen=True)
class ResolvedToken:
    value: str | None
    source: TokenSource | None

    @property
    def masked(self) -> str | None:
        return mask_token(self.value) if self.value else None

    @property
    def problem(self) -> str | None:
        """Why this token cannot be a Replicate token, checked here before any request."""
        return token_format_problem(self.value, needs_prefix=self.source != "sandbox") if self.value else None

    def __repr__(self) -> str:  # dataclass repr would print the token
        return f"ResolvedToken(source={self.source!r}, masked={self.masked!r})"


def token_format_problem(token: str, *, needs_prefix: bool = True) -> str | None:
    """The seed's rule (tokens start with `r8_`), plus what a header can carry and a length cap.
    The sandbox's own token may have any shape a header can carry."""
    if len(token) > MAX_TOKEN_LENGTH:
        return (
            f"Token is {len(token)} characters long; Replicate tokens are 40, and at most "
            f"{MAX_TOKEN_LENGTH} are accepted."
        )
    if needs_prefix and not token.startswith(TOKEN_PREFIX):
        return NO_PREFIX
    if not header_safe(token):
        return UNUSABLE_TOKEN
    return None


def token_format_error(problem: str, source: TokenSource | None = None) -> CloudError:
    """`token_invalid_format` (422) naming where the bad token came from."""
    if source == "env":
        message, hint = f"Invalid token in {TOKEN_ENV}. {problem}", ENV_TOKEN_HINT
    elif source == "saved":
        message = f"Invalid token in the saved token file. {problem}"
        hint = "Save the token again: `simpletuner cloud provider token set`. " + TOKEN_INVALID_HINT
    else:
        message, hint = f"That does not look like a Replicate API token. {problem}", TOKEN_INVALID_HINT
    details: dict[str, Any] = {"source": source}
    if source is None:  # a token sent in a request body: name the field, as validation errors do
        details["fields"] = [{"field": "api_token", "message": problem}]
    return CloudError(message, code="token_invalid_format", hint=hint, details=details)


def require_usable_token(resolved: ResolvedToken) -> str:
    """The token's value, or `token_missing` / `token_invalid_format` before any network call."""
    if not resolved.value:
        raise token_missing()
    problem = resolved.problem
    if problem is not None:
        raise token_format_error(problem, resolved.source)
    return resolved.value


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


@dataclass(frozen=True)
class ClientTarget:
    """What a client is built from once the environment has been read: the pool's key is made of
    these (with the token as its sha256)."""

    base_url: str
    token: str
    timeouts: Timeouts
    proxy: ProxyConfig

    def __repr__(self) -> str:  # dataclass repr would print the token
        return f"ClientTarget(base_url={self.base_url!r}, proxy_enabled={self.proxy.enabled!r})"


def client_target(
    settings: Settings,
    *,
    proxy_url: str | None = None,
    http_timeout: float = 30.0,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientTarget:
    """`token` overrides the resolved one (to validate a token before saving it). Raises
    `token_missing` when there is no token at all and `token_invalid_format` when it cannot be a
    Replicate token."""
    resolved = resolve_token(settings, environ) if token is None else ResolvedToken(token, None)
    value = require_usable_token(resolved)  # else httpx fails deep inside with the token in hand
    return ClientTarget(
        base_url=replicate_base_url(settings),
        token=value,
        timeouts=Timeouts.from_total(http_timeout),
        proxy=resolve_proxy(proxy_url, environ),
    )


def build_replicate_client(
    settings: Settings,
    *,
    proxy_url: str | None = None,
    http_timeout: float = 30.0,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    **seams: Any,
) -> ReplicateClient:
    """A client for the configured Replicate (or the sandbox), see `client_target`. `seams` pass
    through to `ReplicateClient`: transport, retry_policy, breaker, sleep, rng."""
    target = client_target(
        settings, proxy_url=proxy_url, http_timeout=http_timeout, token=token, environ=environ
    )
    return ReplicateClient(
        base_url=target.base_url, token=target.token, timeouts=target.timeouts, proxy=target.proxy, **seams
    )
