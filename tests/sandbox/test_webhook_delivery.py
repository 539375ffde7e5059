"""Webhook deliveries to a real loopback receiver: signed per Standard Webhooks with the account
secret, filtered, throttled, and `completed` retried with the same id and a fresh timestamp."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from replicate.webhook import WebhookSigningSecret
from standardwebhooks import Webhook

import replicate
from simpletuner_cloud.replicate.webhooks import verify_webhook
from tests.sandbox.conftest import SECRET, TRAINER, create, fast_config, running, trainer_input, wait_until
from tests.sandbox.openapi_spec import assert_job_body
from tests.sandbox.receiver import Receiver, webhook_receiver
from tests.support.waiting import eventually

TERMINAL = ("succeeded", "failed", "canceled", "aborted")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


async def settle(receiver: Receiver, count: int) -> None:
    await eventually(
        lambda: len(receiver.received) >= count,
        what=lambda: f"{count} deliveries (got {len(receiver.received)})",
    )


async def settle_completed(receiver: Receiver) -> None:
    """Until the `completed` delivery arrived: one worker sends in order, so every earlier one has too."""
    await eventually(
        lambda: any(item.json["status"] in TERMINAL for item in receiver.received),
        what=lambda: f"the `completed` delivery (got {events_of(receiver)})",
    )


async def run_job(api: httpx.AsyncClient, receiver: Receiver, **body: object) -> dict[str, Any]:
    inputs = await trainer_input(api)
    created = await create(api, inputs, webhook=f"{receiver.url}/hook?ref=job-1", **body)
    return await wait_until(api, f"/v1/predictions/{created['id']}")


async def delivery_log(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The sandbox's log of delivery attempts once it holds `count` of them. An attempt is logged
    when its answer is back, a moment after the receiver recorded the request."""

    async def logged() -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = (await api.get("/_sandbox/webhooks")).json()
        return log if len(log) >= count else []

    return await eventually(logged, what=f"{count} logged delivery attempts")


def events_of(receiver: Receiver) -> list[str]:
    return [item.json["status"] for item in receiver.received]


async def test_every_delivery_verifies(api: httpx.AsyncClient, receiver: Receiver) -> None:
    done = await run_job(api, receiver)
    await settle_completed(receiver)
    await asyncio.sleep(0.1)  # room for a stray delivery after `completed`, which must not come
    secret = (await api.get("/v1/webhooks/default/secret")).json()["key"]
    assert secret == SECRET
    ids = [item.headers["webhook-id"] for item in receiver.received]
    assert len(set(ids)) == len(ids) and all(i.startswith("msg_") for i in ids)
    for item in receiver.received:
        Webhook(secret).verify(item.body, item.headers)
        verify_webhook(secret, item.headers, item.body)
        replicate.webhooks.validate(
            headers=item.headers, body=item.body.decode(), secret=WebhookSigningSecret(key=secret)
        )
        assert item.query == "ref=job-1"
        assert item.headers["content-type"] == "application/json"
        assert_job_body(item.body)  # the GET representation, valid against the spec
    bodies = receiver.bodies()
    assert bodies[0]["status"] == "processing"  # the `start` event
    assert bodies[-1] == done  # `completed` carries exactly the GET representation
    assert any(b["status"] == "processing" and b["logs"] for b in bodies[1:])  # `logs` events


async def test_filter_selects_events(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    await asyncio.sleep(0.1)
    assert events_of(receiver) == ["succeeded"]


async def test_output_event_precedes_completed(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await run_job(api, receiver, webhook_events_filter=["output", "completed"])
    await settle(receiver, 2)
    bodies = receiver.bodies()
    assert [b["status"] for b in bodies] == ["processing", "succeeded"]
    assert bodies[0]["output"] == bodies[1]["output"]


async def test_logs_are_throttled(tmp_path: Path, receiver: Receiver) -> None:
    async with running(fast_config(tmp_path, webhook_throttle_seconds=60)) as (_, api):
        done = await run_job(api, receiver, webhook_events_filter=["logs", "completed"])
        await settle(receiver, 2)
        await asyncio.sleep(0.1)
    # Dozens of log lines, but one `logs` delivery per 60 s window; `completed` carries the rest.
    assert done["logs"].count("\n") > 20
    assert events_of(receiver) == ["processing", "succeeded"]


async def test_completed_is_retried_with_same_id_and_fresh_timestamp(
    app: FastAPI, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.script["completed"] = [500, 503]
    receiver.on_failure = lambda: app.state.sandbox.clock.advance(100)
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 3)
    attempts = receiver.received
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    stamps = [int(a.headers["webhook-timestamp"]) for a in attempts]
    assert stamps[1] >= stamps[0] + 100 and stamps[2] >= stamps[1] + 100
    assert len({a.headers["webhook-signature"] for a in attempts}) == 3
    for attempt in attempts:
        verify_webhook(SECRET, attempt.headers, attempt.body, now=int(attempt.headers["webhook-timestamp"]))
    log = await delivery_log(api, 3)
    assert [entry["outcome"] for entry in log] == ["500", "503", "200"]


async def test_intermediate_events_are_not_retried(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script["other"] = [500] * 100
    await run_job(api, receiver, webhook_events_filter=["start", "completed"])
    await settle(receiver, 2)
    await asyncio.sleep(0.2)
    assert events_of(receiver) == ["processing", "succeeded"]


async def test_redirects_are_not_followed(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script["completed"] = [307]
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 2)  # the 307 counts as a failure and the retry succeeds
    log = await delivery_log(api, 2)
    assert [entry["outcome"] for entry in log] == ["307", "200"]


async def test_unreachable_receiver_does_not_break_the_job(api: httpx.AsyncClient) -> None:
    inputs = await trainer_input(api)
    created = await create(
        api, inputs, webhook="http://127.0.0.1:9/hook", webhook_events_filter=["completed"]
    )
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["status"] == "succeeded"
    log = await delivery_log(api, 4)
    assert [entry["attempt"] for entry in log] == [1, 2, 3, 4]
    assert all(entry["outcome"].startswith("error:") for entry in log)


@pytest.mark.parametrize(
    "suffix", ["/b\n", "/b\r\n", "/b c", "/b\t", "/b\x00", "\\b", ":99999/b", ":port/b"], ids=repr
)
async def test_a_webhook_the_sender_could_not_post_to_is_refused_at_create(
    api: httpx.AsyncClient, receiver: Receiver, suffix: str
) -> None:
    """`$` in a `^https?://...$` check matches before a final newline; httpx then refuses the URL."""
    version = (await api.get(f"/v1/models/{TRAINER}")).json()["latest_version"]["id"]
    refused = await api.post(
        "/v1/predictions", json={"version": version, "input": {}, "webhook": receiver.url + suffix}
    )
    assert refused.status_code == 422
    assert refused.json() == {
        "title": "Input validation failed",
        "status": 422,
        "detail": "- webhook: Does not match format 'uri'\n",
        "invalid_fields": [
            {"type": "format", "field": "webhook", "description": "Does not match format 'uri'"}
        ],
    }
    assert (await api.get("/v1/predictions")).json()["results"] == []


@pytest.mark.parametrize("webhook", ["http:///hook", "ftp://127.0.0.1/hook", "http://xn--zz/hook", "hook"])
async def test_a_webhook_without_an_http_host_is_refused_at_create(
    api: httpx.AsyncClient, webhook: str
) -> None:
    version = (await api.get(f"/v1/models/{TRAINER}")).json()["latest_version"]["id"]
    refused = await api.post("/v1/predictions", json={"version": version, "input": {}, "webhook": webhook})
    assert refused.status_code == 422 and refused.json()["invalid_fields"][0]["field"] == "webhook"


async def test_a_refused_webhook_leaves_the_others_delivered(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The campaign's case: hooks a, b + a final newline, c. Only b is refused; a and c arrive."""
    inputs = await trainer_input(api)
    first = await create(
        api, inputs, webhook=f"{receiver.url}/hook?to=a", webhook_events_filter=["completed"]
    )
    version = (await api.get(f"/v1/models/{TRAINER}")).json()["latest_version"]["id"]
    refused = await api.post(
        "/v1/predictions",
        json={
            "version": version,
            "input": inputs,
            "webhook": f"{receiver.url}/hook?to=b\n",
            "webhook_events_filter": ["completed"],
        },
    )
    assert refused.status_code == 422
    last = await create(api, inputs, webhook=f"{receiver.url}/hook?to=c", webhook_events_filter=["completed"])
    await settle(receiver, 2)
    assert sorted(body["id"] for body in receiver.bodies()) == sorted([first["id"], last["id"]])


@pytest.mark.parametrize(
    ("bad_url", "error"),
    [("{receiver}/hook?to=b\n", "error: InvalidURL"), ("http://xn--zz/hook", "error: IDNAError")],
    ids=["final-newline", "bad-idna-label"],
)
async def test_a_delivery_httpx_refuses_does_not_stop_the_sender(
    tmp_path: Path, receiver: Receiver, bad_url: str, error: str
) -> None:
    """Defence in depth behind the create check: a URL httpx cannot send to (InvalidURL, or a plain
    ValueError from idna) is logged as a failed attempt, and the one worker carries on."""
    async with running(fast_config(tmp_path, max_simulated_steps=100_000)) as (app, api):
        inputs = await trainer_input(api)
        first = await create(
            api, inputs, webhook=f"{receiver.url}/hook?to=b", webhook_events_filter=["completed"]
        )
        app.state.sandbox.jobs[first["id"]].webhook = bad_url.format(receiver=receiver.url)
        assert (await api.post(f"/v1/predictions/{first['id']}/cancel")).status_code == 200
        last = await create(
            api, inputs, webhook=f"{receiver.url}/hook?to=c", webhook_events_filter=["completed"]
        )
        assert (await api.post(f"/v1/predictions/{last['id']}/cancel")).status_code == 200
        await eventually(lambda: receiver.received, timeout=10, what="the second job's delivery")
        log = await delivery_log(api, 2)
    assert [body["id"] for body in receiver.bodies()] == [last["id"]]
    assert next(entry["outcome"] for entry in log if entry["job_id"] == first["id"]) == error
    assert any(entry["job_id"] == last["id"] and entry["outcome"] == "200" for entry in log)
