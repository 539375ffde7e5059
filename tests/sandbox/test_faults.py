"""Each fault knob of POST /faults, shown by its effect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from simpletuner_cloud.replicate.webhooks import InvalidSignature, verify_webhook
from simpletuner_cloud.sandbox.clock import parse_iso
from tests.sandbox.conftest import SECRET, TRAINER, create, latest_version, trainer_input, wait_until
from tests.sandbox.receiver import Receiver, webhook_receiver
from tests.sandbox.test_api_basics import UNAUTHENTICATED
from tests.sandbox.test_webhook_delivery import delivery_log, events_of, run_job, settle
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
