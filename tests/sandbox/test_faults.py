"""Each fault knob of POST /faults, shown by its effect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from simpletuner_cloud.replicate.webhooks import InvalidSignature, verify_webhook
from simpletuner_cloud.sandbox import create_sandbox_app
from simpletuner_cloud.sandbox import faults as faults_module
from simpletuner_cloud.sandbox.clock import parse_iso
from simpletuner_cloud.sandbox.faults import CUDA_OOM_ERROR
from tests.sandbox.conftest import (
    AUTH,
    BASE,
    SECRET,
    TOKEN,
    TRAINER,
    create,
    fast_config,
    latest_version,
    running,
    trainer_input,
    wait_until,
)
from tests.sandbox.receiver import Receiver, webhook_receiver
from tests.sandbox.test_api_basics import UNAUTHENTICATED
from tests.sandbox.test_webhook_delivery import delivery_log, events_of, run_job, settle
from tests.support.live_server import free_port, live_server
from tests.support.waiting import eventually


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


async def set_faults(api: httpx.AsyncClient, **faults: object) -> dict[str, object]:
    response = await api.post("/faults", json=faults)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_faults_endpoint_get_post_delete(api: httpx.AsyncClient) -> None:
    defaults = (await api.get("/faults")).json()
    assert defaults["rate_limit"]["count"] == 0 and defaults["fail_at_step"] is None
    updated = await set_faults(api, fail_at_step=3)
    assert updated["fail_at_step"] == 3 and updated["rate_limit"] == defaults["rate_limit"]
    updated = await set_faults(api, starting_delay=2)
    assert updated["fail_at_step"] == 3 and updated["starting_delay"] == 2  # partial updates merge
    assert (await api.delete("/faults")).json() == defaults


async def test_faults_endpoint_rejects_bad_json_in_replicate_shape(api: httpx.AsyncClient) -> None:
    response = await api.post("/faults", json={"rate_limit": {"count": -1}, "nonsense": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {item["field"] for item in response.json()["invalid_fields"]}
    assert fields == {"rate_limit.count", "nonsense"}


async def test_faults_endpoint_needs_the_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/faults", json={"fail_at_step": 1}, headers={"Authorization": "Bearer nope"})
    assert (response.status_code, response.json()) == (401, UNAUTHENTICATED)
    assert (await api.get("/faults")).json()["fail_at_step"] is None


async def test_rate_limit_next_n_calls(api: httpx.AsyncClient) -> None:
    await set_faults(api, rate_limit={"count": 2, "retry_after": 7})
    for _ in range(2):
        response = await api.get("/v1/account")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert response.json() == {
            "detail": "Request was throttled. Expected available in 7 seconds.",
            "status": 429,
            "retry_after": 7,
        }
    assert (await api.get("/v1/account")).status_code == 200


async def test_rate_limit_per_route_and_low_credit_wording(api: httpx.AsyncClient) -> None:
    await set_faults(
        api, rate_limit={"count": 1, "retry_after": 5, "route": "/v1/predictions", "low_credit": True}
    )
    assert (await api.get("/v1/account")).status_code == 200
    response = await api.get("/v1/predictions")
    assert response.status_code == 429
    assert "less than $5.0 in credit" in response.json()["detail"] and response.json()["retry_after"] == 5


async def test_rate_limit_by_method_creates_nothing(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    await set_faults(api, rate_limit={"count": 1, "route": "/v1/predictions", "method": "POST"})
    assert (await api.get("/v1/predictions")).status_code == 200  # GETs of the route pass
    throttled = await api.post("/v1/predictions", json={"version": version, "input": {}})
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "5"
    assert (await api.get("/v1/predictions")).json()["results"] == []
    assert (await api.post("/v1/predictions", json={"version": version, "input": {}})).status_code == 201


async def test_server_errors_json_and_html(api: httpx.AsyncClient) -> None:
    await set_faults(api, server_errors={"count": 2, "status": 502})
    for _ in range(2):
        response = await api.get("/v1/account")
        assert response.status_code == 502 and response.headers["content-type"] == "application/problem+json"
        assert response.json() == {"detail": "Internal server error", "status": 502}
    await set_faults(api, server_errors={"count": 1, "status": 504, "html": True})
    response = await api.get("/v1/account")
    assert response.status_code == 504 and response.headers["content-type"].startswith("text/html")
    assert "<title>504 Gateway Timeout</title>" in response.text and "cloudflare" in response.text
    assert (await api.get("/v1/account")).status_code == 200


async def test_server_errors_fail_before_create(api: httpx.AsyncClient) -> None:
    inputs, version = await trainer_input(api), await latest_version(api)
    await set_faults(api, server_errors={"count": 1, "status": 500})
    response = await api.post("/v1/predictions", json={"version": version, "input": inputs})
    assert response.status_code == 500
    assert (await api.get("/v1/predictions")).json()["results"] == []


async def test_server_errors_after_create(api: httpx.AsyncClient) -> None:
    inputs = await trainer_input(api)
    version = await latest_version(api)
    await set_faults(api, server_errors={"count": 3, "status": 503, "after_create": True})
    assert (await api.get("/v1/account")).status_code == 200  # only create calls are affected
    response = await api.post("/v1/predictions", json={"version": version, "input": inputs})
    assert response.status_code == 503
    listed = (await api.get("/v1/predictions")).json()["results"]
    assert len(listed) == 1 and listed[0]["input"] == inputs  # the job exists all the same
    training = await api.post(
        f"/v1/models/{TRAINER}/versions/{version}/trainings",
        json={"destination": "sandbox/my-lora", "input": inputs},
    )
    assert training.status_code == 503 and len((await api.get("/v1/trainings")).json()["results"]) == 1
    uploaded = await api.post("/v1/files", files={"content": ("x.zip", b"x", "application/zip")})
    assert uploaded.status_code == 503 and len((await api.get("/v1/files")).json()["results"]) == 2
    assert (await api.get("/faults")).json()["server_errors"]["count"] == 0


async def test_after_create_passes_real_errors_through(api: httpx.AsyncClient) -> None:
    await set_faults(api, server_errors={"count": 1, "after_create": True})
    response = await api.post("/v1/predictions", json={"version": "0" * 64, "input": {}})
    assert response.status_code == 422  # nothing was created, so no injected 5xx
    assert (await api.get("/faults")).json()["server_errors"]["count"] == 1


async def test_latency(api: httpx.AsyncClient) -> None:
    await set_faults(api, latency={"seconds": 60, "count": 1, "route": "/v1/account"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(api.get("/v1/account"), timeout=0.2)
    # The next call is not held: it answers long before the 60 s it would otherwise take.
    assert (await asyncio.wait_for(api.get("/v1/account"), timeout=30)).status_code == 200


async def test_starting_delay_keeps_jobs_starting(api: httpx.AsyncClient) -> None:
    inputs = await trainer_input(api)
    await set_faults(api, starting_delay=30)
    stuck = await create(api, inputs)
    await set_faults(api, starting_delay=0)
    normal = await create(api, inputs)
    await wait_until(api, f"/v1/predictions/{normal['id']}")
    assert (await api.get(f"/v1/predictions/{stuck['id']}")).json()["status"] == "starting"
    canceled = (await api.post(f"/v1/predictions/{stuck['id']}/cancel")).json()
    assert canceled["status"] == "canceled" and "started_at" not in canceled


async def test_starting_forever(api: httpx.AsyncClient) -> None:
    await set_faults(api, starting_delay=-1)
    stuck = await create(api, await trainer_input(api))
    await asyncio.sleep(0.1)
    assert (await api.get(f"/v1/predictions/{stuck['id']}")).json()["status"] == "starting"


async def test_fail_at_step(api: httpx.AsyncClient) -> None:
    await set_faults(api, fail_at_step=3)
    created = await create(api, await trainer_input(api))
    failed = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: simulated trainer failure at step 3 of 10 (sandbox fault)"
    assert "| 3/10 [" in failed["logs"] and "10/10" not in failed["logs"]
    assert failed["output"] is None and failed["metrics"]["predict_time"] >= 0


async def test_late_validation(api: httpx.AsyncClient) -> None:
    await set_faults(api, late_validation=True)
    created = await create(api, {**(await trainer_input(api)), "max_train_steps": "ten"})
    failed = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "Prediction input failed validation: "
        "input.max_train_steps: Invalid type. Expected: integer, given: string"
    )


async def test_webhook_drop(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_faults(api, webhooks={"drop": ["logs", "start"]})
    await run_job(api, receiver)
    await settle(receiver, 2)
    await asyncio.sleep(0.1)
    assert events_of(receiver) == ["processing", "succeeded"]  # only `output` and `completed`
    outcomes = [entry["outcome"] for entry in (await api.get("/_sandbox/webhooks")).json()]
    assert "dropped" in outcomes


async def test_webhook_duplicate(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_faults(api, webhooks={"duplicate": True})
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 2)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-signature"] == second.headers["webhook-signature"]
    assert first.body == second.body


async def test_webhook_delay(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_faults(api, webhooks={"delay": 0.5})
    done = await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    completed_at = parse_iso(done["completed_at"])
    assert completed_at is not None
    # Sent no earlier than the delay after the job ended (load can only make it later). A small
    # margin covers the timestamp's rounding and the wall clock against the loop's monotonic one.
    assert receiver.received[0].at - completed_at >= 0.49


async def test_webhook_reorder(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_faults(api, webhooks={"reorder": True})
    await run_job(api, receiver, webhook_events_filter=["start", "logs", "completed"])
    await eventually(  # the held last `logs` follows `completed`
        lambda: "succeeded" in events_of(receiver) and events_of(receiver)[-1] != "succeeded",
        what=lambda: f"a `logs` delivery after `completed` (got {events_of(receiver)})",
    )
    statuses = events_of(receiver)
    assert statuses[-2:] == ["succeeded", "processing"]  # `completed` overtook the last `logs`
    last, completed = receiver.received[-1].json, receiver.received[-2].json
    assert completed["logs"].startswith(last["logs"]) and len(completed["logs"]) > len(last["logs"])
    sent = [entry["event"] for entry in await delivery_log(api, len(receiver.received))]
    assert sent[0] == "start" and sent[-2:] == ["completed", "logs"]


async def test_webhook_rotation_header_has_one_valid_entry(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_faults(api, webhooks={"rotation": True})
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    item = receiver.received[0]
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(item.body, item.headers)  # any matching entry is enough
    verify_webhook(SECRET, item.headers, item.body)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_webhook_missing_header(api: httpx.AsyncClient, receiver: Receiver, header: str) -> None:
    await set_faults(api, webhooks={"omit_header": header})
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    item = receiver.received[0]
    assert header not in item.headers
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(item.body, item.headers)
    with pytest.raises(InvalidSignature) as caught:
        verify_webhook(SECRET, item.headers, item.body)
    assert caught.value.reason == "missing_headers"


async def test_webhook_stale_timestamp_is_rejected_by_receivers(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await set_faults(api, webhooks={"stale_seconds": 400})
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    item = receiver.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(item.body, item.headers)
    with pytest.raises(InvalidSignature) as caught:
        verify_webhook(SECRET, item.headers, item.body)
    assert caught.value.reason == "timestamp_too_old"


async def test_webhook_bad_signature(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await set_faults(api, webhooks={"bad_signature": True})
    await run_job(api, receiver, webhook_events_filter=["completed"])
    await settle(receiver, 1)
    item = receiver.received[0]
    with pytest.raises(InvalidSignature) as caught:
        verify_webhook(SECRET, item.headers, item.body)
    assert caught.value.reason == "no_matching_signature"


async def test_status_page_is_operational_by_default(api: httpx.AsyncClient) -> None:
    ok = (await api.get("/status/api/v2/summary.json", headers={"Authorization": ""})).json()
    assert set(ok) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert ok["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert ok["incidents"] == [] and ok["scheduled_maintenances"] == []
    assert all(c["status"] == "operational" for c in ok["components"])
    assert {"id", "name", "url", "time_zone", "updated_at"} <= set(ok["page"])


@pytest.mark.parametrize(
    ("indicator", "component"),
    [("minor", "degraded_performance"), ("major", "partial_outage"), ("critical", "major_outage")],
)
async def test_status_page_indicator(api: httpx.AsyncClient, indicator: str, component: str) -> None:
    await set_faults(api, status_page={"indicator": indicator})
    summary = (await api.get("/status/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == indicator
    incident = summary["incidents"][0]
    assert (incident["impact"], incident["status"]) == (indicator, "investigating")
    assert component in {c["status"] for c in summary["components"]}
    assert {c["status"] for c in incident["components"]} == {component}
    assert incident["incident_updates"][0]["affected_components"][0]["new_status"] == component
    status = (await api.get("/status/api/v2/status.json")).json()
    assert set(status) == {"page", "status"} and status["status"] == summary["status"]


@pytest.mark.parametrize(
    ("mode", "status", "media"),
    [
        ("500", 500, "text/html"),
        ("html", 200, "text/html"),
        ("malformed", 200, "application/json"),
        ("redirect", 301, None),
    ],
)
async def test_status_page_failure_modes(
    api: httpx.AsyncClient, mode: str, status: int, media: str | None
) -> None:
    await set_faults(api, status_page={"mode": mode})
    response = await api.get("/status/api/v2/summary.json")
    assert response.status_code == status
    if media:
        assert response.headers["content-type"].startswith(media)
    if mode != "redirect":
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)


async def test_status_page_timeout(api: httpx.AsyncClient) -> None:
    await set_faults(api, status_page={"mode": "timeout"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(api.get("/status/api/v2/status.json"), timeout=0.2)


async def test_new_fault_sections_and_their_defaults(api: httpx.AsyncClient) -> None:
    faults = (await api.get("/faults")).json()
    assert faults["connection_drops"] == {"route": None, "method": None, "count": 0, "after_create": True}
    assert faults["slow_bodies"] == {
        "route": None,
        "method": None,
        "response_delay": 0.0,
        "request_delay": 0.0,
        "chunk_bytes": 1024,
        "count": None,
    }
    assert faults["scripts"] == [] and faults["run_timeout_seconds"] == 1800.0


# -- dropped connections ----------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[str]:
    """The sandbox under a real uvicorn: a dropped connection needs a socket to drop."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with live_server(create_sandbox_app(fast_config(tmp_path, public_base_url=base)), port=port):
        yield base


DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)  # no answer: EOF, or a reset, per the OS


def test_connection_dropped_after_create(live: str) -> None:
    """The "maybe created" case: the prediction exists, but the client never gets an answer."""
    with httpx.Client(base_url=live, headers=AUTH, timeout=30) as client:
        version = client.get(f"/v1/models/{TRAINER}").json()["latest_version"]["id"]
        assert client.post("/faults", json={"connection_drops": {"count": 1}}).status_code == 200
        with pytest.raises(DROPPED):
            client.post("/v1/predictions", json={"version": version, "input": {"max_train_steps": 3}})
        listed = client.get("/v1/predictions").json()["results"]
        assert [p["input"] for p in listed] == [{"max_train_steps": 3}]  # created all the same
        assert client.get("/faults").json()["connection_drops"]["count"] == 0
        answered = client.post("/v1/predictions", json={"version": version, "input": {}})
        assert answered.status_code == 201 and len(client.get("/v1/predictions").json()["results"]) == 2


def test_connection_dropped_before_create(live: str) -> None:
    with httpx.Client(base_url=live, headers=AUTH, timeout=30) as client:
        version = client.get(f"/v1/models/{TRAINER}").json()["latest_version"]["id"]
        drops = {"count": 1, "after_create": False, "route": "/v1/predictions", "method": "POST"}
        client.post("/faults", json={"connection_drops": drops})
        assert client.get("/v1/predictions").status_code == 200  # a GET of the route is not matched
        with pytest.raises(DROPPED):
            client.post("/v1/predictions", json={"version": version, "input": {}})
        assert client.get("/v1/predictions").json()["results"] == []


def test_a_refused_create_is_answered_and_keeps_the_drop_armed(live: str) -> None:
    with httpx.Client(base_url=live, headers=AUTH, timeout=30) as client:
        client.post("/faults", json={"connection_drops": {"count": 1}})
        refused = client.post("/v1/predictions", json={"version": "0" * 64, "input": {}})
        assert refused.status_code == 422  # nothing was created, so nothing to drop
        assert client.get("/faults").json()["connection_drops"]["count"] == 1


async def test_without_a_socket_a_dropped_create_is_never_answered(api: httpx.AsyncClient) -> None:
    """In-process (no socket to close) the answer is withheld; the job exists all the same."""
    version = await latest_version(api)
    await set_faults(api, connection_drops={"count": 1})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            api.post("/v1/predictions", json={"version": version, "input": {}}), timeout=0.5
        )
    assert len((await api.get("/v1/predictions")).json()["results"]) == 1


# -- slow bodies --------------------------------------------------------------------------------


class Recorder:
    """Stands in for `asyncio` inside the fault layer: records each pause instead of taking it."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def sleep(self, seconds: float) -> None:
        if seconds:
            self.events.append(("sleep", seconds))
        await asyncio.sleep(0)


async def call_asgi(
    app: FastAPI,
    method: str,
    path: str,
    *,
    chunks: list[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> list[Any]:
    """Drive the app directly and return what happened, in order: pauses and messages sent."""
    events: list[Any] = []
    pending = list(chunks or [b""])

    async def receive() -> dict[str, Any]:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending)}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        events.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"sandbox.test"), (b"authorization", f"Bearer {TOKEN}".encode())]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("sandbox.test", 80),
    }
    recorder = Recorder(events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(faults_module, "asyncio", recorder)
        await app(scope, receive, send)  # type: ignore[arg-type]
    return events


def body_of(events: list[Any]) -> bytes:
    return b"".join(
        e.get("body", b"") for e in events if isinstance(e, dict) and e["type"] == "http.response.body"
    )


async def test_slow_response_body(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Headers at once, then the body in `chunk_bytes` pieces, each after `response_delay`."""
    normal = (await api.get("/v1/account")).content
    await set_faults(
        api, slow_bodies={"response_delay": 5, "chunk_bytes": 10, "route": "/v1/account", "count": 1}
    )
    events = await call_asgi(app, "GET", "/v1/account")
    assert events[0]["type"] == "http.response.start" and events[0]["status"] == 200
    pieces = [normal[i : i + 10] for i in range(0, len(normal), 10)]
    expected: list[Any] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        expected += [("sleep", 5), {"type": "http.response.body", "body": piece, "more_body": not last}]
    assert events[1:] == expected
    assert body_of(events) == normal
    again = await call_asgi(app, "GET", "/v1/account")  # `count` 1: only one request was slowed
    assert not any(isinstance(e, tuple) for e in again) and body_of(again) == normal


async def test_slow_upload_accept(app: FastAPI, api: httpx.AsyncClient) -> None:
    """Each chunk of the request body is read only after `request_delay`: a slow upload accept."""
    await set_faults(api, slow_bodies={"request_delay": 2.5, "route": "/v1/files", "method": "POST"})
    upload = httpx.Request(
        "POST", f"{BASE}/v1/files", files={"content": ("a.zip", b"x" * 3000, "application/zip")}
    )
    content = upload.read()
    chunks = [content[i : i + 1024] for i in range(0, len(content), 1024)]
    events = await call_asgi(app, "POST", "/v1/files", chunks=chunks, headers=dict(upload.headers))
    sleeps = [e for e in events if isinstance(e, tuple)]
    assert sleeps == [("sleep", 2.5)] * len(chunks)
    assert next(e for e in events if isinstance(e, dict))["status"] == 201
    stored = json.loads(body_of(events))
    assert stored["size"] == 3000 and stored["name"] == "a.zip"
    assert (await api.get("/v1/account")).status_code == 200  # other routes are not slowed


# -- scripted outcomes ----------------------------------------------------------------------------


async def scripted(api: httpx.AsyncClient, *scripts: dict[str, Any]) -> None:
    await set_faults(api, scripts=list(scripts))


async def test_script_by_webhook_job_fails_at_step_with_cuda_oom(api: httpx.AsyncClient) -> None:
    await scripted(
        api,
        {"match": {"webhook_query": {"job": "j-7"}}, "outcome": "fail", "at_step": 3, "preset": "cuda_oom"},
    )
    inputs = await trainer_input(api)
    doomed = await create(api, inputs, webhook="https://hooks.test/api/webhooks/replicate?job=j-7")
    other = await create(api, inputs, webhook="https://hooks.test/api/webhooks/replicate?job=j-8")
    failed = await wait_until(api, f"/v1/predictions/{doomed['id']}")
    assert (failed["status"], failed["error"]) == ("failed", CUDA_OOM_ERROR)
    assert failed["error"].startswith("torch.OutOfMemoryError: CUDA out of memory.")
    lines = failed["logs"].splitlines()
    assert "| 3/10 [" in lines[-3] and "10/10" not in failed["logs"]
    assert lines[-2:] == [f"[ERROR] Training failed: {CUDA_OOM_ERROR}", "[STAGE] ✗ Training Aborted"]
    assert "started_at" in failed and failed["metrics"]["predict_time"] >= 0
    assert (await wait_until(api, f"/v1/predictions/{other['id']}"))["status"] == "succeeded"


async def test_script_by_input_overrides_the_global_fault(api: httpx.AsyncClient) -> None:
    await set_faults(
        api, fail_at_step=2, scripts=[{"match": {"input": {"max_train_steps": 4}}, "outcome": "succeed"}]
    )
    inputs = await trainer_input(api)
    lucky = await create(api, {**inputs, "max_train_steps": 4})
    unlucky = await create(api, inputs)
    assert (await wait_until(api, f"/v1/predictions/{lucky['id']}"))["status"] == "succeeded"
    assert (await wait_until(api, f"/v1/predictions/{unlucky['id']}"))["status"] == "failed"


async def test_script_for_the_next_n_creates_stays_queued_on_the_sandbox_clock(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    await scripted(api, {"times": 2, "outcome": "queued", "queued_seconds": 900})
    inputs = await trainer_input(api)
    first, second, third = [await create(api, inputs) for _ in range(3)]
    assert (await wait_until(api, f"/v1/predictions/{third['id']}"))["status"] == "succeeded"
    assert (await api.get("/faults")).json()["scripts"][0]["times"] == 0  # used up
    for job in (first, second):
        assert (await api.get(f"/v1/predictions/{job['id']}")).json()["status"] == "starting"
    await api.post("/_sandbox/clock", json={"advance": 901})
    for job in (first, second):
        done = await wait_until(api, f"/v1/predictions/{job['id']}")
        assert done["status"] == "succeeded", done["error"]


async def test_script_queued_without_seconds_waits_until_canceled(api: httpx.AsyncClient) -> None:
    await scripted(api, {"outcome": "queued"})
    created = await create(api, await trainer_input(api))
    await api.post("/_sandbox/clock", json={"advance": 86400})
    assert (await api.get(created["urls"]["get"])).json()["status"] == "starting"
    canceled = (await api.post(created["urls"]["cancel"])).json()
    assert canceled["status"] == "canceled" and "started_at" not in canceled


async def test_script_cancel_at_step(api: httpx.AsyncClient) -> None:
    await scripted(api, {"outcome": "cancel", "at_step": 2})
    done = await wait_until(api, (await create(api, await trainer_input(api)))["urls"]["get"])
    assert done["status"] == "canceled" and done["error"] is None and "started_at" in done
    assert "| 2/10 [" in done["logs"] and "| 4/10 [" not in done["logs"]
    assert "Training Aborted" not in done["logs"] and done["output"] is None


@pytest.mark.parametrize(
    ("script", "status", "error"),
    [
        ({"outcome": "cancel"}, "canceled", None),
        (
            {"outcome": "fail"},
            "failed",
            "RuntimeError: simulated failure before training started (sandbox fault)",
        ),
        ({"outcome": "fail", "error": "Boot failed: no GPU"}, "failed", "Boot failed: no GPU"),
    ],
)
async def test_script_outcomes_before_the_run_starts(
    api: httpx.AsyncClient, script: dict[str, Any], status: str, error: str | None
) -> None:
    await scripted(api, script)
    done = await wait_until(api, (await create(api, await trainer_input(api)))["urls"]["get"])
    assert (done["status"], done["error"], done["logs"]) == (status, error, "")
    assert "started_at" not in done


async def test_script_with_its_own_error_and_log_lines(api: httpx.AsyncClient) -> None:
    await scripted(
        api,
        {
            "match": {"kind": "training"},
            "outcome": "fail",
            "at_step": 2,
            "error": "ValueError: the sandbox says no",
            "log_lines": ["Traceback (most recent call last):", "ValueError: the sandbox says no"],
        },
    )
    inputs = await trainer_input(api)
    prediction = await create(api, inputs)  # not a training: unaffected
    version = await latest_version(api)
    training = await api.post(
        f"/v1/models/{TRAINER}/versions/{version}/trainings",
        json={"destination": "sandbox/my-lora", "input": inputs},
    )
    failed = await wait_until(api, f"/v1/trainings/{training.json()['id']}")
    assert failed["error"] == "ValueError: the sandbox says no"
    assert failed["logs"].splitlines()[-3:] == [
        "Traceback (most recent call last):",
        "ValueError: the sandbox says no",
        "[STAGE] ✗ Training Aborted",
    ]
    assert (await wait_until(api, f"/v1/predictions/{prediction['id']}"))["status"] == "succeeded"


async def test_bad_scripts_are_refused_in_replicate_shape(api: httpx.AsyncClient) -> None:
    response = await api.post("/faults", json={"scripts": [{"outcome": "explode", "at_step": 0}]})
    assert response.status_code == 422
    fields = {item["field"] for item in response.json()["invalid_fields"]}
    assert fields == {"scripts.0.outcome", "scripts.0.at_step"}
    assert (await api.get("/faults")).json()["scripts"] == []


# -- the run timeout --------------------------------------------------------------------------------


@pytest.fixture
async def long_runs(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A sandbox whose runs last minutes (one visible step per 0.01 s, up to 100000 of them)."""
    async with running(fast_config(tmp_path, max_simulated_steps=100_000)) as started:
        yield started


async def test_runs_time_out_after_30_minutes_of_the_sandbox_clock(
    long_runs: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, api = long_runs
    created = await create(api, await trainer_input(api, max_train_steps=10**5))
    await wait_until(api, created["urls"]["get"], ("processing",))
    moved = (await api.post("/_sandbox/clock", json={"advance": 1790})).json()
    assert moved["timed_out"] == 0
    assert (await api.get(created["urls"]["get"])).json()["status"] == "processing"
    assert (await api.post("/_sandbox/clock", json={"advance": 11})).json()["timed_out"] == 1
    failed = (await api.get(created["urls"]["get"])).json()
    assert (failed["status"], failed["error"]) == ("failed", "Prediction timed out.")
    assert failed["metrics"]["predict_time"] >= 1800 and "completed_at" in failed


async def test_the_run_timeout_is_a_fault_knob_captured_at_create(
    long_runs: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, api = long_runs
    await set_faults(api, run_timeout_seconds=60)
    short = await create(api, await trainer_input(api, max_train_steps=10**5))
    await set_faults(api, run_timeout_seconds=1800)
    normal = await create(api, await trainer_input(api, max_train_steps=10**5))
    for job in (short, normal):
        await wait_until(api, job["urls"]["get"], ("processing",))
    await api.post("/_sandbox/clock", json={"advance": 61})
    # The background pass (every 0.1 s) also notices, without a clock call.
    assert (await wait_until(api, short["urls"]["get"]))["error"] == "Prediction timed out."
    assert (await api.get(normal["urls"]["get"])).json()["status"] == "processing"
