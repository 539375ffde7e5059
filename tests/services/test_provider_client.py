"""The adapter against a real sandbox over sockets: the factory's token and URL resolution, the
retry policy and the breaker driven by the sandbox's fault endpoint, and the proxy path through a
real proxy.py process (setting, HTTP_PROXY env, NO_PROXY bypass)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simpletuner_cloud.api.app import sandbox_base_url as app_sandbox_base_url
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.factory import (
    build_replicate_client,
    replicate_base_url,
    resolve_token,
    sandbox_base_url,
    status_page_base_url,
)
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy
from simpletuner_cloud.security.files import write_secret_file
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port
from tests.support.provider_sandbox import RunningProxy, RunningSandbox, http_proxy, standalone_sandbox

OTHER_TOKEN = "r8_" + "x" * 37


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with standalone_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    with http_proxy(tmp_path_factory.mktemp("proxy")) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_faults(sandbox: RunningSandbox) -> Iterator[None]:
    yield
    sandbox.faults(
        rate_limit={"count": 0},
        server_errors={"count": 0},
        latency={"seconds": 0},
        status_page={"mode": "ok"},
    )


@pytest.fixture
def env(sandbox: RunningSandbox) -> dict[str, str]:
    return {"REPLICATE_API_TOKEN": sandbox.token}


def settings_for(sandbox: RunningSandbox):  # type: ignore[no-untyped-def]
    return load_settings(replicate_base_url=sandbox.url)


def test_token_order_env_then_saved_then_none() -> None:
    settings = load_settings()
    assert resolve_token(settings, {}).source is None
    write_secret_file(settings.replicate_token_path, OTHER_TOKEN + "\n")
    saved = resolve_token(settings, {})
    assert (saved.value, saved.source, saved.masked) == (OTHER_TOKEN, "saved", "r8_...xxxx")
    from_env = resolve_token(settings, {"REPLICATE_API_TOKEN": "  r8_envenvenv1234\n"})
    assert (from_env.value, from_env.source) == ("r8_envenvenv1234", "env")
    assert OTHER_TOKEN not in repr(saved)
    sandboxed = resolve_token(load_settings(sandbox=True), {"REPLICATE_API_TOKEN": OTHER_TOKEN})
    assert sandboxed.source == "sandbox"


def test_missing_token_is_the_seed_message() -> None:
    with pytest.raises(CloudError) as caught:
        build_replicate_client(load_settings(), environ={})
    assert (caught.value.code, caught.value.message) == ("token_missing", "REPLICATE_API_TOKEN not set")
    assert 'export REPLICATE_API_TOKEN="r8_..."' in caught.value.hint


def test_base_urls() -> None:
    settings = load_settings(sandbox=True, port=4321)
    assert replicate_base_url(settings) == sandbox_base_url(settings) == app_sandbox_base_url(settings)
    assert status_page_base_url(settings) == "http://127.0.0.1:4321/sandbox/status"
    plain = load_settings()
    assert replicate_base_url(plain) == "https://api.replicate.com"
    assert status_page_base_url(plain) == "https://www.replicatestatus.com"


async def test_account_and_versions_from_the_sandbox(sandbox: RunningSandbox, env: dict[str, str]) -> None:
    async with build_replicate_client(settings_for(sandbox), environ=env) as client:
        account = await client.account()
        versions = await client.list_versions("simpletuner/advanced-trainer")
        hardware = await client.list_hardware()
        secret = await client.webhook_secret()
    assert (account.username, account.type) == ("sandbox", "user")
    assert [v["id"] for v in versions] == sandbox.versions()
    assert {"sku": "gpu-l40s", "name": "Nvidia L40S GPU"} in hardware
    assert secret.startswith("whsec_")


async def test_429_with_retry_after_is_waited_out(sandbox: RunningSandbox, env: dict[str, str]) -> None:
    sandbox.faults(rate_limit={"count": 2, "retry_after": 3, "route": "/v1/account"})
    sleeps = Sleeps()
    async with build_replicate_client(settings_for(sandbox), environ=env, sleep=sleeps) as client:
        assert (await client.account()).username == "sandbox"
    assert sleeps.calls == [3.0, 3.0]


async def test_5xx_burst_is_retried_with_backoff(sandbox: RunningSandbox, env: dict[str, str]) -> None:
    sandbox.faults(server_errors={"count": 2, "status": 503, "html": True})
    sleeps = Sleeps()
    async with build_replicate_client(settings_for(sandbox), environ=env, sleep=sleeps) as client:
        assert (await client.account()).username == "sandbox"
    assert len(sleeps.calls) == 2 and all(0 < s <= 8 for s in sleeps.calls)


async def test_breaker_opens_on_5xx_and_fails_fast(sandbox: RunningSandbox, env: dict[str, str]) -> None:
    sandbox.faults(server_errors={"count": 50, "status": 502})
    breaker = CircuitBreaker(threshold=5, cooldown=60)
    seams = {
        "environ": env,
        "sleep": Sleeps(),
        "breaker": breaker,
        "retry_policy": RetryPolicy(max_attempts=4),
    }
    async with build_replicate_client(settings_for(sandbox), **seams) as client:  # type: ignore[arg-type]
        with pytest.raises(CloudError, match="HTTP 502"):
            await client.account()  # 4 attempts, 4 failures
        with pytest.raises(CloudError) as fast:
            await client.account()  # 5th failure opens; the retry fails fast
    assert fast.value.code == "provider_unavailable"
    assert fast.value.details["circuit"] == "open"
    remaining = sandbox.faults()["server_errors"]["count"]
    assert remaining == 45  # exactly 5 requests reached the sandbox


async def test_4xx_never_open_the_breaker(sandbox: RunningSandbox) -> None:
    breaker = CircuitBreaker(threshold=2)
    async with build_replicate_client(
        settings_for(sandbox), environ={}, token=OTHER_TOKEN, breaker=breaker
    ) as client:
        for _ in range(4):
            with pytest.raises(CloudError) as caught:
                await client.account()
            assert (caught.value.code, caught.value.message) == ("token_invalid", "Invalid token")
    assert breaker.state == "closed"


async def test_network_errors_count_for_the_breaker() -> None:
    settings = load_settings(replicate_base_url=f"http://127.0.0.1:{free_port()}")
    breaker = CircuitBreaker(threshold=3)
    seams = {
        "environ": {},
        "sleep": Sleeps(),
        "breaker": breaker,
        "retry_policy": RetryPolicy(max_attempts=3),
    }
    async with build_replicate_client(settings, token=OTHER_TOKEN, **seams) as client:  # type: ignore[arg-type]
        with pytest.raises(CloudError) as caught:
            await client.account()
    assert caught.value.code == "provider_unavailable"
    assert "Could not reach Replicate at 127.0.0.1" in caught.value.message
    assert breaker.state == "open"


async def test_proxy_url_setting_carries_the_requests(
    sandbox: RunningSandbox, proxy: RunningProxy, env: dict[str, str]
) -> None:
    async with build_replicate_client(settings_for(sandbox), environ=env, proxy_url=proxy.url) as client:
        await client.get_model("simpletuner/advanced-trainer-a100")
    assert proxy.carried("/v1/models/simpletuner/advanced-trainer-a100 - 200")


async def test_http_proxy_env_carries_and_no_proxy_bypasses(
    sandbox: RunningSandbox, proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", sandbox.token)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with build_replicate_client(settings_for(sandbox)) as client:  # os.environ, as in production
        await client.get_version("simpletuner/advanced-trainer", sandbox.versions()[0])
    assert proxy.carried(f"/versions/{sandbox.versions()[0]} - 200")

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with build_replicate_client(settings_for(sandbox)) as client:
        await client.get_version("simpletuner/advanced-trainer", sandbox.versions()[1])
    assert not proxy.carried(f"/versions/{sandbox.versions()[1]}", timeout=0.5)


async def test_a_dead_proxy_is_provider_unavailable(sandbox: RunningSandbox, env: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    seams = {"environ": env, "sleep": Sleeps(), "proxy_url": dead}
    async with build_replicate_client(settings_for(sandbox), **seams) as client:  # type: ignore[arg-type]
        with pytest.raises(CloudError) as caught:
            await client.account()
    assert caught.value.code == "provider_unavailable"
    assert sandbox.token not in str(caught.value) + repr(caught.value.to_body())
