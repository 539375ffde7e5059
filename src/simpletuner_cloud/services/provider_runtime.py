"""What the provider's use cases keep between requests: the circuit breaker, the status page reader
and its cache, and what Replicate said about each token (keyed by its sha256, never the token),
plus the test seams (transport, sleep, clocks). One per app, on `app.state.provider_runtime`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from simpletuner_cloud.replicate.client import USER_AGENT, ReplicateClient
from simpletuner_cloud.replicate.factory import build_replicate_client, resolve_proxy, status_page_base_url
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy, Sleep
from simpletuner_cloud.replicate.status_page import StatusPageReader
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.settings import Settings

SINGLE_ATTEMPT = RetryPolicy(max_attempts=1)
TokenCheck = Literal["valid", "invalid", "unknown"]
# How long a check stands: a rejected token never becomes valid, a valid one may be revoked, and an
# unreachable Replicate is asked again soon (but not on every page load).
CHECK_TTL: dict[TokenCheck, float] = {"valid": 600.0, "invalid": float("inf"), "unknown": 30.0}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ProviderRuntime:
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    transport: httpx.AsyncBaseTransport | None = None  # unit seam; None is the real network
    environ: Mapping[str, str] | None = None  # None is os.environ, read by the factory only
    status_page: StatusPageReader | None = None
    clock: Callable[[], float] = time.monotonic  # ages of token checks
    now: Callable[[], datetime] = _utcnow  # billing windows
    readiness_timeout: float = 3.0  # the provider list waits at most this long for a token check
    _status_key: tuple[str, object] | None = None
    _token_checks: dict[str, tuple[float, TokenCheck]] = field(default_factory=dict)

    def client(
        self,
        settings: Settings,
        replicate: ReplicateSettings,
        token: str | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> ReplicateClient:
        return build_replicate_client(
            settings,
            proxy_url=replicate.proxy_url,
            http_timeout=replicate.http_timeout,
            token=token,
            environ=self.environ,
            transport=self.transport,
            retry_policy=retry_policy or self.retry_policy,
            breaker=self.breaker,
            sleep=self.sleep,
        )

    def remember_check(self, token: str, check: TokenCheck) -> None:
        self._token_checks[_fingerprint(token)] = (self.clock(), check)

    def known_check(self, token: str) -> TokenCheck | None:
        stored = self._token_checks.get(_fingerprint(token))
        if stored is None or self.clock() - stored[0] >= CHECK_TTL[stored[1]]:
            return None
        return stored[1]

    def status_reader(self, settings: Settings, replicate: ReplicateSettings) -> StatusPageReader:
        """One cached reader; rebuilt only when its address or proxy changes (a test may also
        install its own reader, which is then kept)."""
        proxy = resolve_proxy(replicate.proxy_url, self.environ)
        key = (status_page_base_url(settings), proxy)
        if self.status_page is None or (self._status_key is not None and self._status_key != key):
            self.status_page = StatusPageReader(key[0], proxy=proxy, user_agent=USER_AGENT)
            self._status_key = key
        return self.status_page


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
