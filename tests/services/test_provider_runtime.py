"""The runtime's client pool: one client per token, proxy, timeout, base URL and retry policy,
reused across calls, bounded, and closed when evicted (after its last lease) or at shutdown."""

from __future__ import annotations

import hashlib

import httpx

from simpletuner_cloud.services.provider_runtime import SINGLE_ATTEMPT, ProviderRuntime
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.settings import load_settings

TOKEN = "r8_" + "a" * 37
OTHER = "r8_" + "b" * 37


def answering(seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"username": "me", "type": "user"})

    return httpx.MockTransport(handle)


def runtime_with(seen: list[str]) -> ProviderRuntime:
    return ProviderRuntime(transport=answering(seen), environ={"REPLICATE_API_TOKEN": TOKEN})


async def test_two_calls_with_the_same_settings_share_one_open_client() -> None:
    seen: list[str] = []
    runtime, settings, replicate = runtime_with(seen), load_settings(), ReplicateSettings()
    async with runtime.client(settings, replicate) as first:
        await first.request("GET", "/v1/account")
    async with runtime.client(settings, replicate) as second:
        await second.request("GET", "/v1/account")
    assert second is first
    assert not first.http.is_closed  # leaving `async with` leaves it open for the next call
    assert seen == [f"Bearer {TOKEN}"] * 2
    await runtime.aclose()
    assert first.http.is_closed


async def test_a_changed_proxy_or_timeout_gets_a_new_client() -> None:
    runtime, settings = runtime_with([]), load_settings()
    async with runtime.client(settings, ReplicateSettings()) as plain:
        pass
    async with runtime.client(settings, ReplicateSettings(proxy_url="http://proxy.internal:3128")) as proxied:
        pass
    async with runtime.client(settings, ReplicateSettings(http_timeout=5.0)) as quick:
        pass
    assert len({id(plain), id(proxied), id(quick)}) == 3
    assert proxied.proxy.http == "http://proxy.internal:3128"
    assert quick.timeouts.read == 5.0
    await runtime.aclose()


async def test_another_token_or_retry_policy_gets_its_own_client() -> None:
    seen: list[str] = []
    runtime, settings, replicate = runtime_with(seen), load_settings(), ReplicateSettings()
    async with runtime.client(settings, replicate) as saved:
        await saved.request("GET", "/v1/account")
    async with runtime.client(settings, replicate, OTHER, retry_policy=SINGLE_ATTEMPT) as checked:
        await checked.request("GET", "/v1/account")
    async with runtime.client(settings, replicate, OTHER) as other:
        pass
    assert len({id(saved), id(checked), id(other)}) == 3
    assert seen == [f"Bearer {TOKEN}", f"Bearer {OTHER}"]
    await runtime.aclose()


async def test_the_pool_is_keyed_by_the_tokens_sha256_never_the_token() -> None:
    runtime = runtime_with([])
    async with runtime.client(load_settings(), ReplicateSettings()):
        pass
    (key,) = runtime.pool._clients
    assert key.token_sha256 == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in repr(key)
    await runtime.aclose()


async def test_the_least_recently_used_client_is_evicted_and_closed() -> None:
    runtime, settings = runtime_with([]), load_settings()
    runtime.pool.size = 2
    async with runtime.client(settings, ReplicateSettings(http_timeout=1.0)) as oldest:
        pass
    async with runtime.client(settings, ReplicateSettings(http_timeout=2.0)) as recent:
        pass
    async with runtime.client(settings, ReplicateSettings(http_timeout=1.0)) as again:
        pass  # now the 2-second one is the least recently used
    async with runtime.client(settings, ReplicateSettings(http_timeout=3.0)) as newest:
        pass
    assert again is oldest
    assert recent.http.is_closed
    assert runtime.pool.clients() == [oldest, newest]
    assert not oldest.http.is_closed and not newest.http.is_closed
    await runtime.aclose()


async def test_a_client_evicted_while_in_use_closes_when_its_call_ends() -> None:
    runtime, settings = runtime_with([]), load_settings()
    runtime.pool.size = 1
    async with runtime.client(settings, ReplicateSettings(http_timeout=1.0)) as busy:
        async with runtime.client(settings, ReplicateSettings(http_timeout=2.0)):
            pass
        assert not busy.http.is_closed  # evicted, but this call still holds it
        await busy.request("GET", "/v1/account")
    assert busy.http.is_closed
    await runtime.aclose()


async def test_a_client_closed_outside_the_pool_is_replaced() -> None:
    runtime, settings, replicate = runtime_with([]), load_settings(), ReplicateSettings()
    async with runtime.client(settings, replicate) as first:
        await first.aclose()
    async with runtime.client(settings, replicate) as second:
        assert not second.http.is_closed
    assert second is not first
    await runtime.aclose()
