"""The status page reader at its unit seam: every failure is `unknown` with a reason; answers are
cached. The sandbox's status faults are exercised in tests/api/test_system_status.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from simpletuner_cloud.replicate.status_page import StatusPageReader

SUMMARY = {
    "page": {"id": "x", "name": "Replicate"},
    "status": {"indicator": "minor", "description": "Partially Degraded Service"},
    "components": [
        {"name": "API", "status": "operational", "group": False},
        {"name": "Trainings", "status": "partial_outage", "group": False},
        {"name": "Weird", "status": "on_fire", "group": False},
        {"name": "Group", "status": "major_outage", "group": True},
    ],
    "incidents": [{"name": "Slow trainings", "status": "investigating", "impact": "minor", "shortlink": "s"}],
}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def reader(
    handler: Callable[[httpx.Request], httpx.Response], clock: Clock | None = None
) -> StatusPageReader:
    return StatusPageReader(
        "https://status.test", transport=httpx.MockTransport(handler), clock=clock or Clock(), timeout=0.2
    )


async def test_summary_is_parsed() -> None:
    status = await reader(lambda r: httpx.Response(200, json=SUMMARY)).status()
    assert (status.indicator, status.description, status.reason) == (
        "minor",
        "Partially Degraded Service",
        None,
    )
    assert status.components == [
        {"name": "Trainings", "status": "partial_outage"},
        {"name": "Weird", "status": "unknown"},
    ]
    assert status.incidents[0]["name"] == "Slow trainings"
    assert status.source == "https://status.test/api/v2/summary.json"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(500, text="<h1>oops</h1>"), "the status page answered HTTP 500"),
        (
            httpx.Response(200, text="<html></html>", headers={"content-type": "text/html"}),
            "text/html, not JSON",
        ),
        (
            httpx.Response(200, content=b'{"status": ', headers={"content-type": "application/json"}),
            "malformed JSON",
        ),
        (httpx.Response(200, json={"status": {"indicator": "purple"}}), "unknown indicator 'purple'"),
        (httpx.Response(200, json=["not", "an", "object"]), "without a `status` object"),
    ],
)
async def test_failures_are_unknown_with_a_reason(response: httpx.Response, reason: str) -> None:
    status = await reader(lambda r: response).status()
    assert status.indicator == "unknown"
    assert status.reason is not None and reason in status.reason


async def test_redirect_loop_is_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"location": str(request.url)})

    status = await reader(handler).status()
    assert (status.indicator, status.reason) == ("unknown", "the status page redirected too many times")


async def test_network_error_is_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    status = await reader(handler).status()
    assert status.reason == "could not reach the status page (ConnectError)"


async def test_a_slow_page_is_cut_at_the_configured_timeout() -> None:
    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    slow = StatusPageReader("https://status.test", transport=Slow(), timeout=0.05)
    status = await slow.status()
    assert (status.indicator, status.reason) == ("unknown", "the status page did not answer within 0.05 s")


async def test_answers_are_cached_for_a_minute_failures_briefly() -> None:
    clock = Clock()
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=SUMMARY) if len(calls) > 1 else httpx.Response(503)

    page = reader(handler, clock)
    assert (await page.status()).indicator == "unknown"
    clock.now = 10
    assert (await page.status()).indicator == "unknown"  # failure cached 15 s
    clock.now = 16
    assert (await page.status()).indicator == "minor"
    clock.now = 70
    assert (await page.status()).indicator == "minor"
    assert len(calls) == 2
    clock.now = 77
    await page.status()
    assert len(calls) == 3
