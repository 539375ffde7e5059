"""The provider adapter: Replicate's API through the official `replicate` client, with base URL,
token, split timeouts, proxy and transport injected (never read from the environment here; see
`factory.py`). Every call goes through `retries.PolicyTransport`: one retry policy, one breaker,
failures as `CloudError`s. Objects the official models cannot parse (status `aborted`, versions with
a null schema) are read as plain JSON through the same HTTP client."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import httpx

import replicate
from simpletuner_cloud import __version__
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.proxies import ProxyConfig, ProxyRoutingTransport
from simpletuner_cloud.replicate.retries import NO_RETRY, CircuitBreaker, PolicyTransport, RetryPolicy, Sleep

USER_AGENT = f"simpletuner-cloud/{__version__} (+replicate-python/{package_version('replicate')})"
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_VERSION_PAGES = 5  # newest first; older versions than 5 pages back are not worth a request


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 10.0

    @classmethod
    def from_total(cls, seconds: float) -> Timeouts:
        """`http_timeout` bounds reads and writes; connecting and waiting for a pooled connection
        should fail fast whatever it is."""
        return cls(connect=min(5.0, seconds), read=seconds, write=seconds, pool=min(10.0, seconds))

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class Account:
    username: str
    name: str | None
    type: str
    github_url: str | None = None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


class _OfficialClient(replicate.Client):
    """The official client over our HTTP client: its own `_build_httpx_client` would wrap any
    transport in its `RetryTransport` (a second, blind retry policy) and read REPLICATE_* env vars."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__(api_token=None, base_url=str(http.base_url))
        self._http = http

    @property
    def _async_client(self) -> httpx.AsyncClient:
        return self._http

    @property
    def _client(self) -> httpx.Client:
        raise RuntimeError("simpletuner-cloud uses the async API of the replicate client only")


class ReplicateClient:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeouts: Timeouts | None = None,
        proxy: ProxyConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.proxy = proxy or ProxyConfig()
        self.timeouts = timeouts or Timeouts()
        inner = transport or ProxyRoutingTransport(self.proxy)
        self.policy = PolicyTransport(inner, policy=retry_policy, breaker=breaker, sleep=sleep, rng=rng)
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=self.timeouts.httpx(),
            transport=self.policy,
            trust_env=False,  # the factory already resolved proxies from the environment
            follow_redirects=False,
        )
        self.official = _OfficialClient(self.http)

    def __repr__(self) -> str:  # never the token
        return f"ReplicateClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> ReplicateClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> httpx.Response:
        """Raw access for what the official client lacks. `retry=False` opts a safe call out. `path`
        may be an absolute URL from an answer (a page's `next`), but only on Replicate's own origin:
        the token goes with every request."""
        self._check_origin(path)
        if not retry:
            kwargs.setdefault("extensions", {})[NO_RETRY] = True
        return await self.http.request(method, path, **kwargs)

    def _check_origin(self, path: str) -> None:
        url, base = httpx.URL(path), self.http.base_url
        if url.is_relative_url or _origin(url) == _origin(base):
            return
        raise CloudError(
            f"Replicate's answer pointed at {url.scheme}://{url.host}, not {base.scheme}://{base.host}; "
            "not following it, because the API token would go with the request.",
            code="provider_error",
            details={"url": str(url.copy_with(query=None))},
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # Account, catalogue, secrets (official client models)
    async def account(self) -> Account:
        try:
            found = await self.official.accounts.async_current()
            return Account(found.username, found.name, found.type, found.github_url)
        except ValueError:  # pydantic: `name` is optional in the API but required by the client
            data = await self._json("GET", "/v1/account")
            return Account(
                data["username"], data.get("name"), data.get("type", "user"), data.get("github_url")
            )

    async def list_hardware(self) -> list[dict[str, str]]:
        return [{"sku": h.sku, "name": h.name} for h in await self.official.hardware.async_list()]

    async def webhook_secret(self) -> str:
        return (await self.official.webhooks.default.async_secret()).key

    async def get_model(self, model: str) -> dict[str, Any]:
        owner, name = model.split("/", 1)
        return await self._json("GET", f"/v1/models/{owner}/{name}")  # type: ignore[no-any-return]

    async def list_versions(self, model: str) -> list[dict[str, Any]]:
        """Newest first, following `next` for a few pages (the official client reads one page and
        rejects versions with a null `cog_version`)."""
        owner, name = model.split("/", 1)
        url: str | None = f"/v1/models/{owner}/{name}/versions"
        found: list[dict[str, Any]] = []
        for _ in range(MAX_VERSION_PAGES):
            if not url:
                break
            page = await self._json("GET", url)
            found.extend(page.get("results") or [])
            url = page.get("next")
        return found

    async def get_version(self, model: str, version_id: str) -> dict[str, Any]:
        owner, name = model.split("/", 1)
        return await self._json("GET", f"/v1/models/{owner}/{name}/versions/{version_id}")  # type: ignore[no-any-return]

    # Predictions and trainings: plain JSON, since `aborted` breaks the official Prediction model.
    async def create_prediction(
        self,
        *,
        version: str,
        input: dict[str, Any],
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Never retried once sent: an ambiguous failure is the caller's to reconcile."""
        body: dict[str, Any] = {"version": version, "input": input}
        if webhook:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = webhook_events_filter
        return await self._json("POST", "/v1/predictions", json=body, headers=headers)  # type: ignore[no-any-return]

    async def create_training(
        self,
        *,
        model: str,
        version: str,
        destination: str,
        input: dict[str, Any],
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
    ) -> dict[str, Any]:
        owner, name = model.split("/", 1)
        body: dict[str, Any] = {"destination": destination, "input": input}
        if webhook:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = webhook_events_filter
        path = f"/v1/models/{owner}/{name}/versions/{version}/trainings"
        return await self._json("POST", path, json=body)  # type: ignore[no-any-return]

    async def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/predictions/{prediction_id}")  # type: ignore[no-any-return]

    async def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """The prediction, or None when Replicate has none by that id (gone, or never made)."""
        try:
            return await self.get_prediction(prediction_id)
        except CloudError as exc:
            if exc.code != "provider_not_found":
                raise
            return None

    async def cancel_prediction(self, prediction_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/v1/predictions/{prediction_id}/cancel")  # type: ignore[no-any-return]

    async def list_predictions(
        self, *, created_after: str | None = None, url: str | None = None
    ) -> dict[str, Any]:
        """One page (`next` is the following page's absolute URL; pass it back as `url`)."""
        params = {"created_after": created_after} if created_after and not url else None
        return await self._json("GET", url or "/v1/predictions", params=params)  # type: ignore[no-any-return]

    async def get_training(self, training_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/trainings/{training_id}")  # type: ignore[no-any-return]

    async def cancel_training(self, training_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/v1/trainings/{training_id}/cancel")  # type: ignore[no-any-return]

    async def list_trainings(self, *, url: str | None = None) -> dict[str, Any]:
        return await self._json("GET", url or "/v1/trainings")  # type: ignore[no-any-return]
