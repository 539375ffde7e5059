"""What the provider's use cases keep between requests: the circuit breaker, the pooled Replicate
clients, the status page reader and its cache, and what Replicate said about each token (keyed by its
sha256, never the token), plus the test seams (transport, sleep, clocks). One per app, on
`app.state.provider_runtime`, closed by the app's lifespan."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from simpletuner_cloud.replicate.client import USER_AGENT, ReplicateClient
from simpletuner_cloud.replicate.factory import (
    ClientTarget,
    client_target,
    resolve_proxy,
    status_page_base_url,
)
from simpletuner_cloud.replicate.proxies import ProxyConfig
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy, Sleep
from simpletuner_cloud.replicate.status_page import StatusPageReader
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.settings import Settings

SINGLE_ATTEMPT = RetryPolicy(max_attempts=1)
TokenCheck = Literal["valid", "invalid", "unknown"]
# How long a check stands: a rejected token never becomes valid, a valid one may be revoked, and an
# unreachable Replicate is asked again soon (but not on every page load).
CHECK_TTL: dict[TokenCheck, float] = {"valid": 600.0, "invalid": float("inf"), "unknown": 30.0}
# One client per token and setting in use: the saved token, a token being validated, the sandbox's.
# More than that is settings changing, and the oldest is not coming back.
POOL_SIZE = 4


@dataclass(frozen=True)
class ClientKey:
    token_sha256: str
    base_url: str
    proxy: ProxyConfig
    http_timeout: float
    retry_policy: RetryPolicy


class ClientLease:
    """What `ProviderRuntime.client` hands out: `async with` yields the pooled client and, on exit,
    leaves it open for the next call. A client evicted while leased closes when its last lease ends."""

    def __init__(self, pool: ClientPool, client: ReplicateClient) -> None:
        self._pool, self.client = pool, client

    async def __aenter__(self) -> ReplicateClient:
        return self.client

    async def __aexit__(self, *_: object) -> None:
        await self._pool.release(self.client)


class ClientPool:
    """Up to `size` clients, least recently used evicted first. Each keeps its own connections, so
    a call reuses the TCP and TLS connection of the call before it."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._clients: OrderedDict[ClientKey, ReplicateClient] = OrderedDict()
        self._leases: dict[int, int] = {}  # id(client) -> open leases
        self._retired: list[ReplicateClient] = []  # evicted, closed once no lease holds them

    def lease(self, key: ClientKey, build: Callable[[], ReplicateClient]) -> ClientLease:
        client = self._clients.get(key)
        if client is None or client.http.is_closed:
            client = self._clients[key] = build()
        self._clients.move_to_end(key)
        while len(self._clients) > self.size:
            _, evicted = self._clients.popitem(last=False)
            self._retired.append(evicted)
        self._leases[id(client)] = self._leases.get(id(client), 0) + 1
        return ClientLease(self, client)

    async def release(self, client: ReplicateClient) -> None:
        left = self._leases.get(id(client), 1) - 1
        if left > 0:
            self._leases[id(client)] = left
        else:
            self._leases.pop(id(client), None)
        idle = [c for c in self._retired if id(c) not in self._leases]
        self._retired = [c for c in self._retired if id(c) in self._leases]
        for retired in idle:
            await retired.aclose()

    def clients(self) -> list[ReplicateClient]:
        return list(self._clients.values())

    async def aclose(self) -> None:
        """At shutdown, after the worker and the runner have stopped: every client, leased or not."""
        everything = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._retired.clear()
        self._leases.clear()
        for client in everything:
            await client.aclose()


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
    pool: ClientPool = field(default_factory=ClientPool)
    _status_key: tuple[str, object] | None = None
    _token_checks: dict[str, tuple[float, TokenCheck]] = field(default_factory=dict)

    def client(
        self,
        settings: Settings,
        replicate: ReplicateSettings,
        token: str | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> ClientLease:
        """`async with runtime.client(...) as client:` the pooled client for this token, proxy,
        timeout, base URL and retry policy; a changed setting gets a client of its own."""
        target = client_target(
            settings,
            proxy_url=replicate.proxy_url,
            http_timeout=replicate.http_timeout,
            token=token,
            environ=self.environ,
        )
        policy = retry_policy or self.retry_policy
        key = ClientKey(
            _fingerprint(target.token), target.base_url, target.proxy, replicate.http_timeout, policy
        )
        return self.pool.lease(key, lambda: self._build(target, policy))

    def _build(self, target: ClientTarget, policy: RetryPolicy) -> ReplicateClient:
        return ReplicateClient(
            base_url=target.base_url,
            token=target.token,
            timeouts=target.timeouts,
            proxy=target.proxy,
            transport=self.transport,
            retry_policy=policy,
            breaker=self.breaker,
            sleep=self.sleep,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()

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
