"""Replicate's status page (Atlassian Statuspage v2 `summary.json`), read advisory-only: a short
timeout, a cache, and any failure (timeout, 5xx, HTML, malformed JSON, unknown enum, redirect loop)
becomes `indicator: "unknown"` with a reason. It never raises and never blocks longer than `timeout`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from simpletuner_cloud.replicate.proxies import ProxyConfig, ProxyRoutingTransport

INDICATORS = frozenset({"none", "minor", "major", "critical"})
COMPONENT_STATUSES = frozenset(
    {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
)
SUMMARY_PATH = "/api/v2/summary.json"


@dataclass(frozen=True)
class SystemStatus:
    indicator: str  # none | minor | major | critical | unknown
    description: str
    source: str
    checked_at: datetime
    reason: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.indicator != "unknown"


class StatusPageError(Exception):
    """Why the page could not be read; becomes the `reason` of an unknown status."""


def parse_summary(data: Any, source: str, now: datetime) -> SystemStatus:
    if not isinstance(data, dict) or not isinstance(data.get("status"), dict):
        raise StatusPageError("the status page answered JSON without a `status` object")
    indicator = data["status"].get("indicator")
    if indicator not in INDICATORS:
        raise StatusPageError(f"the status page reported an unknown indicator {indicator!r}")
    components = [
        {
            "name": str(c.get("name", "")),
            "status": c.get("status") if c.get("status") in COMPONENT_STATUSES else "unknown",
        }
        for c in data.get("components") or []
        if isinstance(c, dict) and c.get("status") != "operational" and not c.get("group")
    ]
    incidents = [
        {key: i.get(key) for key in ("name", "status", "impact", "shortlink", "started_at", "updated_at")}
        for i in data.get("incidents") or []
        if isinstance(i, dict)
    ]
    return SystemStatus(
        indicator=indicator,
        description=str(data["status"].get("description") or indicator),
        source=source,
        checked_at=now,
        components=components,
        incidents=incidents,
    )


class StatusPageReader:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 3.0,
        cache_seconds: float = 60.0,
        failure_cache_seconds: float = 15.0,
        proxy: ProxyConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        user_agent: str = "simpletuner-cloud",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.failure_cache_seconds = failure_cache_seconds
        self._proxy = proxy or ProxyConfig()
        self._transport = transport
        self._clock = clock
        self._now = now
        self._user_agent = user_agent
        self._cached: tuple[float, SystemStatus] | None = None
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        return self.base_url + SUMMARY_PATH

    def cached(self) -> SystemStatus | None:
        """The last answer if still fresh, without any network call."""
        if self._cached is None:
            return None
        stored_at, status = self._cached
        ttl = self.cache_seconds if status.known else self.failure_cache_seconds
        return status if self._clock() - stored_at < ttl else None

    async def status(self) -> SystemStatus:
        async with self._lock:  # concurrent callers share one fetch
            fresh = self.cached()
            if fresh is not None:
                return fresh
            status = await self._fetch()
            self._cached = (self._clock(), status)
            return status

    async def _fetch(self) -> SystemStatus:
        try:
            async with asyncio.timeout(self.timeout):  # bounds the whole exchange, slow bodies too
                data = await self._get_json()
            return parse_summary(data, self.source, self._now())
        except TimeoutError:
            reason = f"the status page did not answer within {self.timeout:g} s"
        except httpx.TooManyRedirects:
            reason = "the status page redirected too many times"
        except httpx.HTTPError as exc:
            reason = f"could not reach the status page ({type(exc).__name__})"
        except StatusPageError as exc:
            reason = str(exc)
        return SystemStatus("unknown", "Status unknown", self.source, self._now(), reason=reason)

    async def _get_json(self) -> Any:
        transport = self._transport or ProxyRoutingTransport(self._proxy)
        async with httpx.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            follow_redirects=True,  # the apex host 301s to www.
            max_redirects=3,
            trust_env=False,
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
        ) as http:
            response = await http.get(self.source)
        if response.status_code != 200:
            raise StatusPageError(f"the status page answered HTTP {response.status_code}")
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise StatusPageError(f"the status page answered {media_type or 'no content type'}, not JSON")
        try:
            return response.json()
        except ValueError as exc:
            raise StatusPageError("the status page answered malformed JSON") from exc
