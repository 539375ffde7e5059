"""The provider adapter at its unit seam (httpx.MockTransport): the retry policy, the breaker, the
error table and the headers. End-to-end behaviour against the sandbox is in tests/services and tests/api."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.client import USER_AGENT, ReplicateClient, Timeouts
from simpletuner_cloud.replicate.retries import CircuitBreaker, RetryPolicy, is_retry_safe

TOKEN = "r8_" + "T" * 37
ACCOUNT = {"type": "user", "username": "ana", "name": "Ana", "github_url": None}


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    sleeps: Sleeps | None = None,
    breaker: CircuitBreaker | None = None,
    policy: RetryPolicy | None = None,
) -> ReplicateClient:
    return ReplicateClient(
        base_url="https://replicate.test",
        token=TOKEN,
        transport=httpx.MockTransport(handler),
        sleep=sleeps or Sleeps(),
        breaker=breaker,
        retry_policy=policy,
        rng=random.Random(7),
    )


def problem(
    status: int, body: dict[str, object] | str, headers: dict[str, str] | None = None
) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers={"content-type": "text/html", **(headers or {})})
    return httpx.Response(
        status,
        content=json.dumps(body),
        headers={"content-type": "application/problem+json", **(headers or {})},
    )


async def test_account_sends_user_agent_request_id_and_bearer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ACCOUNT)

    async with make_client(handler) as client:
        account = await client.account()
    assert (account.username, account.name, account.type) == ("ana", "Ana", "user")
    request = seen[0]
    assert request.url == "https://replicate.test/v1/account"
    assert request.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("simpletuner-cloud/") and "replicate-python/1.0" in USER_AGENT
    assert len(request.headers["x-request-id"]) == 36
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_account_without_name_is_read_raw() -> None:
    async with make_client(
        lambda r: httpx.Response(200, json={"type": "organization", "username": "acme"})
    ) as c:
        account = await c.account()
    assert (account.username, account.name, account.type) == ("acme", None, "organization")


async def test_401_is_token_invalid_and_never_carries_the_token() -> None:
    body = {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    async with make_client(lambda r: problem(401, body, {"x-request-id": "req-1"})) as client:
        with pytest.raises(CloudError) as caught:
            await client.account()
    error = caught.value
    # a rejected Replicate token is 422: 401 is only this server's own login failing
    assert (error.code, error.message, error.status) == ("token_invalid", "Invalid token", 422)
    assert error.hint.startswith("Tokens start with r8_.")
    assert error.details["provider_request_id"] == "req-1"
    assert error.details["detail"] == body["detail"]
    assert TOKEN not in repr(error.to_body()) + str(error) + repr(client)


async def test_get_is_retried_on_503_then_succeeds_without_tripping_anything() -> None:
    answers = iter(
        [problem(503, "<html>bad gateway</html>"), problem(502, {}), httpx.Response(200, json=ACCOUNT)]
    )
    sleeps = Sleeps()
    async with make_client(lambda r: next(answers), sleeps=sleeps) as client:
        assert (await client.account()).username == "ana"
    assert len(sleeps.calls) == 2
    # equal jitter: within [step/2, step] of 0.5 s, 1 s
    assert 0.25 <= sleeps.calls[0] <= 0.5 and 0.5 <= sleeps.calls[1] <= 1.0


async def test_429_honours_retry_after_header_and_body() -> None:
    answers = iter(
        [
            problem(429, {"detail": "Request was throttled.", "status": 429}, {"retry-after": "3"}),
            problem(429, {"detail": "Request was throttled.", "status": 429, "retry_after": 5}),
            httpx.Response(200, json=[{"sku": "gpu-l40s", "name": "Nvidia L40S GPU"}]),
        ]
    )
    sleeps = Sleeps()
    async with make_client(lambda r: next(answers), sleeps=sleeps) as client:
        assert await client.list_hardware() == [{"sku": "gpu-l40s", "name": "Nvidia L40S GPU"}]
    assert sleeps.calls == [3.0, 5.0]


async def test_429_after_retries_is_rate_limited_with_retry_after() -> None:
    sleeps = Sleeps()
    answer = problem(429, {"detail": "throttled", "retry_after": 2})
    async with make_client(lambda r: answer, sleeps=sleeps) as client:
        with pytest.raises(CloudError) as caught:
            await client.get_prediction("abc")
    assert caught.value.code == "rate_limited"
    assert caught.value.details["retry_after"] == 2
    assert sleeps.calls == [2.0, 2.0, 2.0]  # 4 attempts


async def test_a_long_retry_after_is_not_waited_for() -> None:
    sleeps = Sleeps()
    async with make_client(lambda r: problem(429, {"retry_after": 600}), sleeps=sleeps) as client:
        with pytest.raises(CloudError, match="retry in 600 s"):
            await client.get_prediction("abc")
    assert sleeps.calls == []


async def test_create_is_never_retried_on_5xx_or_read_timeout() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            return problem(503, {})
        raise httpx.ReadTimeout("slow", request=request)

    async with make_client(handler) as client:
        with pytest.raises(CloudError) as first:
            await client.create_prediction(version="v" * 64, input={})
        with pytest.raises(CloudError) as second:
            await client.create_prediction(version="v" * 64, input={})
    assert calls == ["POST", "POST"]
    assert first.value.code == second.value.code == "provider_unavailable"
    assert "did not answer in time" in second.value.message


async def test_create_is_retried_when_the_connection_was_never_made() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"id": "p1", "status": "starting"})

    async with make_client(handler) as client:
        assert (await client.create_prediction(version="v" * 64, input={}))["id"] == "p1"
    assert calls == ["POST", "POST"]


def test_safe_calls() -> None:
    def req(method: str, path: str) -> httpx.Request:
        return httpx.Request(method, "https://x" + path)

    assert is_retry_safe(req("GET", "/v1/account"))
    assert is_retry_safe(req("DELETE", "/v1/files/abc"))
    assert is_retry_safe(req("POST", "/v1/predictions/abc/cancel"))
    assert not is_retry_safe(req("POST", "/v1/predictions"))
    assert not is_retry_safe(req("POST", "/v1/files"))
    assert not is_retry_safe(req("POST", "/v1/models/a/b/versions/c/trainings"))
    no_retry = httpx.Request("GET", "https://x/v1/account", extensions={"simpletuner_no_retry": True})
    assert not is_retry_safe(no_retry)


async def test_cancel_is_retried() -> None:
    answers = iter([problem(500, {}), httpx.Response(200, json={"id": "p", "status": "canceled"})])
    async with make_client(lambda r: next(answers)) as client:
        assert (await client.cancel_prediction("p"))["status"] == "canceled"


async def test_aborted_predictions_are_accepted() -> None:
    body = {"id": "p", "model": "a/b", "version": "v", "status": "aborted", "input": {}, "logs": None}
    async with make_client(lambda r: httpx.Response(200, json=body)) as client:
        assert (await client.get_prediction("p"))["status"] == "aborted"


async def test_422_keeps_detail_and_invalid_fields() -> None:
    body = {
        "title": "Input validation failed",
        "status": 422,
        "detail": "- input: prompt is required\n",
        "invalid_fields": [{"type": "required", "field": "input", "description": "prompt is required"}],
    }
    async with make_client(lambda r: problem(422, body)) as client:
        with pytest.raises(CloudError) as caught:
            await client.create_prediction(version="v" * 64, input={})
    assert caught.value.code == "provider_invalid_input"
    assert caught.value.status == 422
    assert caught.value.details["invalid_fields"] == body["invalid_fields"]


@pytest.mark.parametrize(
    ("status", "code"), [(404, "provider_not_found"), (413, "upload_too_large"), (403, "provider_error")]
)
async def test_other_4xx(status: int, code: str) -> None:
    async with make_client(lambda r: problem(status, "<html>edge</html>")) as client:
        with pytest.raises(CloudError) as caught:
            await client.get_prediction("p")
    assert caught.value.code == code


async def test_breaker_opens_on_5xx_and_network_errors_then_half_opens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=clock)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) % 2:
            raise httpx.ConnectError("refused", request=request)
        return problem(503, {})

    policy = RetryPolicy(max_attempts=1)
    async with make_client(handler, breaker=breaker, policy=policy) as client:
        for _ in range(5):
            with pytest.raises(CloudError):
                await client.account()
        assert breaker.state == "open"
        with pytest.raises(CloudError) as fast:
            await client.account()
        assert len(calls) == 5  # failed fast: nothing sent
        assert fast.value.code == "provider_unavailable"
        assert fast.value.details["circuit"] == "open"
        assert "not calling it again for 30 s" in fast.value.message

    clock.now += 31
    assert breaker.state == "half_open"
    async with make_client(lambda r: httpx.Response(200, json=ACCOUNT), breaker=breaker) as client:
        assert (await client.account()).username == "ana"
    assert breaker.state == "closed"


async def test_a_failed_trial_reopens_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    breaker.record_failure("HTTP 500")
    breaker.record_failure("HTTP 500")
    clock.now += 10
    async with make_client(
        lambda r: problem(500, {}), breaker=breaker, policy=RetryPolicy(max_attempts=1)
    ) as c:
        with pytest.raises(CloudError):
            await c.account()
    assert breaker.state == "open"


async def test_4xx_never_count_against_the_breaker() -> None:
    breaker = CircuitBreaker(threshold=2)
    async with make_client(lambda r: problem(401, {}), breaker=breaker) as client:
        for _ in range(5):
            with pytest.raises(CloudError, match="Invalid token"):
                await client.account()
    assert (breaker.state, breaker.failures) == ("closed", 0)


async def test_versions_follow_pages_and_accept_null_schema() -> None:
    pages = {
        "/v1/models/simpletuner/advanced-trainer/versions": {
            "next": "https://replicate.test/v1/models/simpletuner/advanced-trainer/versions?cursor=2",
            "results": [{"id": "b" * 64, "created_at": "2025-02-01T00:00:00Z", "cog_version": None}],
        },
        "/v1/models/simpletuner/advanced-trainer/versions?cursor=2": {
            "next": None,
            "results": [{"id": "a" * 64, "created_at": "2025-01-01T00:00:00Z", "cog_version": "0.9"}],
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.path + (f"?{request.url.query.decode()}" if request.url.query else "")
        return httpx.Response(200, json=pages[key])

    async with make_client(handler) as client:
        versions = await client.list_versions("simpletuner/advanced-trainer")
    assert [v["id"][0] for v in versions] == ["b", "a"]


def test_timeouts_split() -> None:
    assert Timeouts.from_total(60) == Timeouts(connect=5, read=60, write=60, pool=10)
    assert Timeouts.from_total(2) == Timeouts(connect=2, read=2, write=2, pool=2)
    timeout = Timeouts.from_total(12).httpx()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (5, 12, 12, 10)


async def test_a_trial_cancelled_by_its_caller_does_not_wedge_the_breaker() -> None:
    """A caller's timeout may cancel the half-open trial: the next call becomes the trial instead of
    being refused forever."""
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock)
    breaker.record_failure("HTTP 503")
    clock.now += 10

    class Hangs(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    hanging = ReplicateClient(
        base_url="https://replicate.test", token=TOKEN, transport=Hangs(), breaker=breaker
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await hanging.account()
    await hanging.aclose()
    assert breaker.state == "half_open"
    async with make_client(lambda r: httpx.Response(200, json=ACCOUNT), breaker=breaker) as client:
        assert (await client.account()).username == "ana"
    assert breaker.state == "closed"


class BreaksOff(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"type": "us'
        raise httpx.ReadError("connection reset mid-body")


async def test_a_body_that_breaks_off_is_a_network_failure_retried_when_safe() -> None:
    answers = iter([httpx.Response(200, stream=BreaksOff()), httpx.Response(200, json=ACCOUNT)])
    sleeps = Sleeps()
    async with make_client(lambda r: next(answers), sleeps=sleeps) as client:
        assert (await client.account()).username == "ana"
    assert len(sleeps.calls) == 1

    calls: list[str] = []

    def create(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(201, stream=BreaksOff())

    async with make_client(create) as client:
        with pytest.raises(CloudError) as caught:  # never a raw httpx.ReadError
            await client.create_prediction(version="v" * 64, input={})
    assert calls == ["POST"]
    assert (caught.value.code, caught.value.details["network_error"]) == ("provider_unavailable", "ReadError")
