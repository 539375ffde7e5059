"""The adapter against a real sandbox over sockets: the factory's token and URL resolution, the
retry policy and the breaker driven by the sandbox's fault endpoint, and the proxy path through a
real proxy.py process (setting, HTTP_PROXY env, NO_PROXY bypass)."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simpletuner_cloud.api.app import sandbox_base_url as app_sandbox_base_url
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.client import USER_AGENT, ReplicateClient
from simpletuner_cloud.replicate.factory import (
    UNUSABLE_TOKEN,
    build_replicate_client,
    mask_token,
    replicate_base_url,
    resolve_token,
    sandbox_base_url,
    status_page_base_url,
)
from simpletuner_cloud.replicate.files import upload_file
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy
from simpletuner_cloud.security.files import write_secret_file
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port
from tests.support.provider_sandbox import (
    RunningProxy,
    RunningSandbox,
    dataset_zip,
    http_proxy,
    recording_replicate,
    standalone_sandbox,
    trainer_config,
)

OTHER_TOKEN = "r8_" + "x" * 37
TRAINER = "simpletuner/advanced-trainer"
DESTINATION = "sandbox/my-lora"


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
        starting_delay=0,
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


# Creates: one request, never resent, whether or not Replicate created the job before failing.
CREATE_ROUTES = {"predictions": "/v1/predictions", "trainings": "/v1/models/", "files": "/v1/files"}


async def _prepared_create(
    kind: str, client: ReplicateClient, tmp: Path
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Everything but the create itself (version lookup, dataset upload), done before the fault."""
    dataset = dataset_zip(tmp / "dataset.zip")
    if kind == "files":
        return lambda: upload_file(client.http, dataset, filename="dataset.zip")
    version = (await client.list_versions(TRAINER))[0]["id"]
    uploaded = await upload_file(client.http, dataset, filename="dataset.zip")
    inputs = {"images": uploaded["urls"]["get"], "config_json": trainer_config()}
    if kind == "predictions":
        return lambda: client.create_prediction(version=version, input=inputs)
    return lambda: client.create_training(
        model=TRAINER, version=version, destination=DESTINATION, input=inputs
    )


@pytest.mark.parametrize("after_create", [False, True], ids=["fail-before-create", "create-then-fail"])
@pytest.mark.parametrize("kind", ["predictions", "trainings", "files"])
async def test_a_create_that_gets_a_503_is_never_resent(
    sandbox: RunningSandbox, env: dict[str, str], tmp_path: Path, kind: str, after_create: bool
) -> None:
    sandbox.faults(starting_delay=-1)  # created jobs wait in `starting`: nothing runs in the background
    sleeps = Sleeps()
    async with build_replicate_client(settings_for(sandbox), environ=env, sleep=sleeps) as client:
        create = await _prepared_create(kind, client, tmp_path)
        before = sandbox.listed(kind)
        errors = {"count": 3, "status": 503, "after_create": after_create, "route": CREATE_ROUTES[kind]}
        sandbox.faults(server_errors={**errors, "method": "POST"})
        with pytest.raises(CloudError) as caught:
            await create()
    assert (caught.value.code, caught.value.details["provider_status"]) == ("provider_unavailable", 503)
    assert sandbox.faults()["server_errors"]["count"] == 2  # exactly one request reached the sandbox
    assert sleeps.calls == []  # no backoff: nothing was about to be resent
    created = [item for item in sandbox.listed(kind) if item not in before]
    assert len(created) == (1 if after_create else 0)  # the ambiguous one is left to reconciliation


async def test_user_agent_and_request_id_arrive_at_the_server() -> None:
    """Both paths (the official client's `accounts`, and raw JSON for versions) send our User-Agent,
    a request id per call that a retry keeps, and the token only in the Authorization header."""
    with recording_replicate(failures=1) as replicate:
        settings = load_settings(replicate_base_url=replicate.url)
        async with build_replicate_client(settings, environ={}, sleep=Sleeps(), token=OTHER_TOKEN) as client:
            await client.account()
            await client.list_versions(TRAINER)
    paths = [what for what, _ in replicate.seen]
    assert paths == [
        "GET /v1/account",
        "GET /v1/account",
        f"GET /v1/models/{TRAINER}/versions",
        f"GET /v1/models/{TRAINER}/versions",
    ]
    headers = [h for _, h in replicate.seen]
    for sent in headers:
        assert sent["user-agent"] == USER_AGENT
        assert str(uuid.UUID(sent["x-request-id"])) == sent["x-request-id"]
        assert sent["authorization"] == f"Bearer {OTHER_TOKEN}"
        assert [k for k, v in sent.items() if OTHER_TOKEN in v] == ["authorization"]
    ids = [h["x-request-id"] for h in headers]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]  # a retry is the same request


def test_https_proxy_is_resolved_for_https_and_http_proxy_for_http() -> None:
    environ = {
        "REPLICATE_API_TOKEN": OTHER_TOKEN,
        "HTTPS_PROXY": "http://secure-proxy:3128",
        "HTTP_PROXY": "http://plain-proxy:3128",
        "NO_PROXY": "internal.example, 10.0.0.0/8",
    }
    real = build_replicate_client(load_settings(), environ=environ)
    assert real.base_url == "https://api.replicate.com"
    assert real.proxy.for_url(httpx.URL(real.base_url)) == "http://secure-proxy:3128"
    sandboxed = build_replicate_client(load_settings(sandbox=True, port=4321), environ=environ)
    assert sandboxed.proxy.for_url(httpx.URL(sandboxed.base_url)) == "http://plain-proxy:3128"
    assert real.proxy.for_url(httpx.URL("https://internal.example/v1")) is None
    assert real.proxy.for_url(httpx.URL("https://10.1.2.3/v1")) is None
    setting = build_replicate_client(load_settings(), environ=environ, proxy_url="http://mine:8080")
    assert setting.proxy.for_url(httpx.URL(setting.base_url)) == "http://mine:8080"


async def test_https_proxy_env_carries_https_calls_through_a_real_proxy(
    proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https:// Replicate is reached through HTTPS_PROXY (a CONNECT tunnel, seen in proxy.py's
    log), never HTTP_PROXY. Nothing answers TLS behind it, so the call ends provider_unavailable."""
    target = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # dead: must not be used
    settings = load_settings(replicate_base_url=f"https://{target}")
    async with build_replicate_client(settings, token=OTHER_TOKEN, sleep=Sleeps()) as client:
        with pytest.raises(CloudError) as caught:
            await client.account()
    assert caught.value.code == "provider_unavailable"
    assert caught.value.details["network_error"] == "ProxyError"
    assert proxy.carried(f"CONNECT {target}")


async def test_an_unusable_token_is_invalid_before_any_request() -> None:
    for token in ("r8_abc\ndefghijklmnopqrstuvwxyz", "r8_é" + "a" * 36, "r8_with space" + "a" * 27):
        with pytest.raises(CloudError) as caught:
            build_replicate_client(load_settings(), environ={"REPLICATE_API_TOKEN": token})
        error = caught.value
        assert (error.code, error.message) == (
            "token_invalid_format",
            f"Invalid token in REPLICATE_API_TOKEN. {UNUSABLE_TOKEN}",
        )
        assert error.details == {"source": "env"}
        assert token.strip() not in repr(error.to_body())


@pytest.mark.parametrize(
    ("token", "masked"),
    [
        ("r8_" + "a" * 33 + "wxyz", "r8_...wxyz"),
        ("  r8_" + "a" * 33 + "wxyz\n", "r8_...wxyz"),
        ("oldstyletokenwithoutprefix1234", "...1234"),  # no prefix: nothing but the last 4
        ("r8_short1234", "r8_..."),  # too short to show any of it
        ("tiny", "..."),
    ],
)
def test_masked_tokens_show_at_most_the_last_4_characters(token: str, masked: str) -> None:
    assert mask_token(token) == masked


async def test_a_next_page_on_another_host_is_not_followed() -> None:
    """The token goes with every request, so a page pointing elsewhere is refused, not fetched."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        page = {"next": "https://collector.example/v1/page2", "results": [{"id": "a" * 64}]}
        return httpx.Response(200, json=page)

    settings = load_settings()
    async with build_replicate_client(
        settings, token=OTHER_TOKEN, environ={}, transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(CloudError) as caught:
            await client.list_versions(TRAINER)
        same_origin = await client.request("GET", "https://api.replicate.com:443/v1/account")
    assert caught.value.code == "provider_error"
    assert "collector.example" in caught.value.message and "not following it" in caught.value.message
    assert seen == [
        f"https://api.replicate.com/v1/models/{TRAINER}/versions",
        "https://api.replicate.com/v1/account",
    ]
    assert same_origin.status_code == 200


@pytest.mark.parametrize("failure", ["401", "503", "refused", "dead-proxy"])
async def test_the_token_is_in_no_error_text(sandbox: RunningSandbox, failure: str) -> None:
    """str, repr, the JSON body, details, and the whole traceback with its chained exceptions."""
    base = {"refused": f"http://127.0.0.1:{free_port()}"}.get(failure, sandbox.url)
    token = OTHER_TOKEN if failure == "401" else sandbox.token
    seams: dict[str, Any] = {"environ": {}, "sleep": Sleeps(), "token": token}
    if failure == "dead-proxy":
        seams["proxy_url"] = f"http://127.0.0.1:{free_port()}"
    if failure == "503":
        sandbox.faults(server_errors={"count": 4, "status": 503})
    async with build_replicate_client(load_settings(replicate_base_url=base), **seams) as client:
        with pytest.raises(CloudError) as caught:
            await client.account()
    error = caught.value
    texts = [str(error), repr(error), repr(error.to_body()), repr(error.details), repr(client)]
    texts.append("".join(traceback.format_exception(error)))
    chained: BaseException | None = error
    while chained is not None:  # the suppressed httpx exception too (its request holds the header)
        texts += [str(chained), repr(chained)]
        chained = chained.__cause__ or chained.__context__
    for text in texts:
        assert token not in text and token[3:] not in text
