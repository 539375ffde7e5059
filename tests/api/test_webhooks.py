"""`POST /api/webhooks/replicate`: one test per failure mode (issue 10), each event type, out-of-order
events, the allowlist and spoofed headers, and unsigned hints. The app runs in-process (the peer
address is chosen per request); it reads the signing secret from a standalone sandbox on a socket,
as it would from Replicate."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.replicate.webhooks import sign
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.webhook_signatures import SELF_TEST_HINT
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import jobs as repo
from tests.api.conftest import remote_client
from tests.sandbox.conftest import create, trainer_input
from tests.support.provider_sandbox import RunningSandbox
from tests.support.waiting import eventually
from tests.support.webhooks import (
    OTHER_SECRET,
    SECRET,
    new_msg_id,
    prediction,
    signed,
    signing_sandbox,
    tracked_job,
)

HOOK = "/api/webhooks/replicate"
REPLICATE_PEER = "34.82.1.2"
OUTSIDER = "203.0.113.7"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with signing_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(autouse=True)
def _point_at_sandbox(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REPLICATE_API_TOKEN", sandbox.token)
    monkeypatch.setenv("SIMPLETUNER_REPLICATE_BASE_URL", sandbox.url)
    monkeypatch.setenv("SIMPLETUNER_STATUS_PAGE_URL", sandbox.status_url)
    yield
    sandbox.app.state.sandbox.webhook_secret = SECRET


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    application = create_app(load_settings())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def replicate(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Requests from an address in the seed's Replicate range."""
    async with remote_client(app, REPLICATE_PEER) as http:
        yield http


async def deliver(
    http: httpx.AsyncClient,
    body: dict[str, Any] | bytes,
    *,
    job: str | None = None,
    headers: dict[str, str] | None = None,
    **signing: Any,
) -> httpx.Response:
    raw, signed_headers = signed(body, **signing)
    params = {"job": job} if job else None
    return await http.post(HOOK, content=raw, headers={**signed_headers, **(headers or {})}, params=params)


async def job_of(app: FastAPI, job_id: str) -> Any:
    async with app.state.database.session() as session:
        return await repo.require_job(session, job_id)


async def recorded(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/cloud/webhooks/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]  # type: ignore[no-any-return]


async def put_settings(client: httpx.AsyncClient, **changes: Any) -> None:
    answer = await client.put("/api/cloud/providers/replicate", json=changes)
    assert answer.status_code == 200, answer.text


# Missing and bad signatures ----------------------------------------------------------------------------
async def test_the_seeds_manual_curl_gets_a_401_naming_the_missing_headers_and_the_self_test(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with remote_client(app) as outsider:
        answer = await outsider.post(
            HOOK, content=b"{}", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "code": "signature_missing",
            "message": "This request is not a signed webhook: the webhook-id, webhook-timestamp, "
            "webhook-signature headers are missing.",
            "hint": SELF_TEST_HINT,
            "details": {"missing_headers": ["webhook-id", "webhook-timestamp", "webhook-signature"]},
        }
    }
    [entry] = await recorded(client)
    assert (entry["outcome"], entry["code"], entry["client_ip"], entry["body_size"]) == (
        "rejected",
        "signature_missing",
        OUTSIDER,
        2,
    )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_each_missing_header_is_named(app: FastAPI, replicate: httpx.AsyncClient, missing: str) -> None:
    raw, headers = signed(prediction("p_missing"))
    del headers[missing]
    answer = await replicate.post(HOOK, content=raw, headers=headers)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["details"]) == ("signature_missing", {"missing_headers": [missing]})
    assert f"the {missing} header is missing" in error["message"]


async def test_a_wrong_secret_is_refused_and_changes_nothing(
    app: FastAPI, replicate: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_wrong")
    answer = await deliver(replicate, prediction("p_wrong", "succeeded"), secret=OTHER_SECRET)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "signature_invalid"
    assert "no_matching_signature" in answer.json()["error"]["message"]
    assert (await job_of(app, job_id)).status == "queued"


async def test_a_tampered_body_is_refused(app: FastAPI, replicate: httpx.AsyncClient) -> None:
    job_id = await tracked_job(app.state.database, "p_tamper")
    raw, headers = signed(prediction("p_tamper", "processing"))
    forged = raw.replace(b'"processing"', b'"succeeded"')
    answer = await replicate.post(HOOK, content=forged, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "signature_invalid")
    assert (await job_of(app, job_id)).status == "queued"


async def test_a_rotated_secret_is_refetched_once(
    app: FastAPI, replicate: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await tracked_job(app.state.database, "p_rotate")
    first = await deliver(replicate, prediction("p_rotate", "starting"))
    assert first.json()["outcome"] == "accepted"  # the secret is now cached
    sandbox.app.state.sandbox.webhook_secret = OTHER_SECRET  # Replicate rotated the account's key
    after = await deliver(replicate, prediction("p_rotate", "processing"), secret=OTHER_SECRET)
    assert (after.status_code, after.json()["outcome"]) == (200, "accepted")
    old = await deliver(replicate, prediction("p_rotate", "processing"), secret=SECRET)
    assert old.json()["error"]["code"] == "signature_invalid"  # the old key no longer works


async def test_any_of_several_signatures_may_match(app: FastAPI, replicate: httpx.AsyncClient) -> None:
    job_id = await tracked_job(app.state.database, "p_several")
    raw, headers = signed(prediction("p_several", "processing"))
    wrong = sign(OTHER_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), raw)
    headers["webhook-signature"] = f"v2,bm90LWhtYWM= {wrong} {headers['webhook-signature']} v1,bad,entry"
    answer = await replicate.post(HOOK, content=raw, headers=headers)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "accepted")
    assert (await job_of(app, job_id)).status == "running"


# A margin past the 300 s: the header holds whole seconds and a loaded machine takes time to answer, so
# exactly 301 can land inside the window (the boundary itself: tests/replicate/test_webhooks.py).
@pytest.mark.parametrize(("offset", "word"), [(-330, "too old"), (330, "in the future")])
async def test_timestamps_out_of_tolerance_are_refused(
    app: FastAPI, replicate: httpx.AsyncClient, offset: int, word: str
) -> None:
    await tracked_job(app.state.database, "p_time")
    answer = await deliver(replicate, prediction("p_time", "processing"), timestamp=time.time() + offset)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "timestamp_out_of_tolerance" and word in error["message"]
    within = await deliver(replicate, prediction("p_time", "processing"), timestamp=time.time() - 240)
    assert within.json()["outcome"] == "accepted"


async def test_a_timestamp_in_unicode_digits_is_a_401_not_a_500(
    app: FastAPI, replicate: httpx.AsyncClient
) -> None:
    raw, headers = signed(prediction("p_digits", "processing"))
    sent: dict[str, str | bytes] = {**headers, "webhook-timestamp": "²".encode("latin-1")}
    answer = await replicate.post(HOOK, content=raw, headers=sent)
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["code"] == "signature_invalid" and "bad_timestamp" in error["message"], error


# Ids: duplicates and forgeries -------------------------------------------------------------------------
async def test_a_redelivery_is_acknowledged_and_changes_nothing(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_dup")
    raw, headers = signed(prediction("p_dup", "processing", logs="Step 1 of 10: loss 0.5, lr 0.0001\n"))
    first = await replicate.post(HOOK, content=raw, headers=headers)
    again = await replicate.post(HOOK, content=raw, headers=headers)
    assert first.json()["outcome"] == "accepted" and first.json()["status"] == "running"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    timeline = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["timeline"]
    assert [e["kind"] for e in timeline].count("progress") == 1
    assert [e["to_status"] for e in timeline if e["kind"] == "status"] == ["created", "queued", "running"]
    entries = await recorded(client, job=job_id)
    assert [e["outcome"] for e in await recorded(client)] == ["duplicate", "accepted"]
    assert [e["outcome"] for e in entries] == ["accepted"]  # a duplicate names no job it changed


async def test_deliveries_queued_behind_a_write_share_a_commit_and_a_duplicate_in_it_is_one(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    first_job = await tracked_job(app.state.database, "p_batch_a")
    second_job = await tracked_job(app.state.database, "p_batch_b")
    writes = app.state.webhook_receiver.writes
    release = asyncio.Event()

    async def busy(_session: Any) -> None:
        await release.wait()

    holding = asyncio.create_task(writes.run(busy))  # a write under way: what arrives now queues
    await eventually(lambda: writes.batches == 0 and writes.waiting == 0, what="the writer taking the hold")
    repeated = signed(prediction("p_batch_a", "processing", logs="Step 1 of 10: loss 0.5, lr 0.0001\n"))
    other = signed(prediction("p_batch_b", "processing", logs="Step 2 of 10: loss 0.4, lr 0.0001\n"))
    sending = [
        asyncio.create_task(replicate.post(HOOK, content=raw, headers=headers))
        for raw, headers in (repeated, repeated, other, repeated)
    ]
    await eventually(lambda: writes.waiting == 4, what="four deliveries queued behind the write")
    release.set()
    answers = await asyncio.gather(*sending)
    await holding
    assert writes.batches == 2  # the hold, then the four together
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    outcomes = [answer.json()["outcome"] for answer in answers]
    assert outcomes == ["accepted", "duplicate", "accepted", "duplicate"]
    assert answers[0].json() == {
        "received": True,
        "outcome": "accepted",
        "delivery_id": answers[0].json()["delivery_id"],
        "job_id": first_job,
        "status": "running",
        "reason": None,
    }
    assert (answers[2].json()["job_id"], answers[2].json()["status"]) == (second_job, "running")
    timeline = (await client.get(f"/api/cloud/jobs/{first_job}")).json()["timeline"]
    assert [e["kind"] for e in timeline].count("progress") == 1
    assert (await job_of(app, first_job)).logs_offset == len("Step 1 of 10: loss 0.5, lr 0.0001\n")
    assert (await job_of(app, second_job)).progress["step"] == 2


async def test_a_forged_request_cannot_claim_a_real_webhook_id(
    app: FastAPI, replicate: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_forged")
    real_id = new_msg_id()
    forged = await deliver(replicate, prediction("p_forged", "canceled"), msg_id=real_id, secret=OTHER_SECRET)
    assert forged.status_code == 401
    genuine = await deliver(replicate, prediction("p_forged", "processing"), msg_id=real_id)
    assert (genuine.status_code, genuine.json()["outcome"]) == (200, "accepted")
    assert (await job_of(app, job_id)).status == "running"


# Bodies ------------------------------------------------------------------------------------------------
async def test_a_body_over_the_limit_is_a_413_even_when_streamed(replicate: httpx.AsyncClient) -> None:
    big = b'{"logs": "' + b"x" * (16 * 1024 * 1024) + b'"}'
    declared = await replicate.post(HOOK, content=big, headers=signed(b"{}")[1])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1024 * 1024):
            yield big[start : start + 1024 * 1024]

    streamed = await replicate.post(HOOK, content=chunks(), headers=signed(b"{}")[1])
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"


async def test_ten_mebibytes_of_logs_are_accepted(app: FastAPI, replicate: httpx.AsyncClient) -> None:
    job_id = await tracked_job(app.state.database, "p_big")
    logs = "Step 7 of 10: loss 0.25, lr 0.0001\n" + "x" * (10 * 1024 * 1024) + "\n"
    answer = await deliver(replicate, prediction("p_big", "processing", logs=logs))
    assert (answer.status_code, answer.json()["outcome"]) == (200, "accepted")
    job = await job_of(app, job_id)
    assert (job.logs_offset, job.progress["step"]) == (len(logs), 7)


async def test_malformed_json_after_a_valid_signature_is_a_400(
    replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for raw in (b'{"id": "p_bad", "status":', b"[1, 2]"):
        answer = await deliver(replicate, raw)
        assert answer.status_code == 400
        assert answer.json()["error"] == {
            "code": "webhook_body_invalid",
            "message": "The webhook body is not a JSON object.",
            "hint": "Replicate sends the prediction as a JSON object; something in between changed it.",
        }
    assert [e["code"] for e in await recorded(client)] == ["webhook_body_invalid"] * 2


async def test_a_delivery_for_an_unknown_prediction_or_job_is_acknowledged_and_ignored(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    other = await tracked_job(app.state.database, "p_owned")
    cases = [
        (prediction("p_nobody"), None, "no job follows prediction p_nobody"),
        (prediction("p_nobody"), "job_missing", "no job job_missing"),
        (prediction("p_owned"), "job_wrong", f"prediction p_owned belongs to job {other}, not job_wrong"),
        ({"status": "processing"}, None, "the body has no prediction id"),
    ]
    for body, job, reason in cases:
        answer = await deliver(replicate, body, job=job)
        assert answer.status_code == 200
        assert answer.json() == {
            "received": True,
            "outcome": "ignored",
            "reason": reason,
            "delivery_id": answer.json()["delivery_id"],
            "job_id": None,
            "status": None,
        }
    assert [e["outcome"] for e in await recorded(client)] == ["ignored"] * 4
    assert (await job_of(app, other)).status == "queued"


async def test_a_delivery_before_the_create_returned_finds_its_job_by_the_url(
    app: FastAPI, replicate: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, None, status="submitting")
    answer = await deliver(replicate, prediction("p_early", "starting"), job=job_id)
    assert answer.json()["outcome"] == "accepted"
    job = await job_of(app, job_id)
    assert (job.prediction_id, job.status, job.last_webhook_at is not None) == ("p_early", "queued", True)
    taken = await deliver(replicate, prediction("p_other", "starting"), job=job_id)
    assert taken.json()["reason"] == f"job {job_id} follows prediction p_early, not p_other"


# Events ------------------------------------------------------------------------------------------------
async def test_each_event_type_moves_the_job_forward(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_events")
    start = await deliver(
        replicate, prediction("p_events", "processing", started_at="2026-12-01T10:00:05.000Z"), job=job_id
    )
    assert start.json()["status"] == "running"
    logs = "Total optimization steps = 100\nStep 40 of 100: loss 0.1250, lr 0.0001\n"
    await deliver(replicate, prediction("p_events", "processing", logs=logs), job=job_id)
    shown = (await client.get(f"/api/cloud/jobs/{job_id}")).json()
    assert (shown["status"], shown["progress"]["step"], shown["progress"]["loss"]) == ("running", 40, 0.125)
    assert (await client.get(f"/api/cloud/jobs/{job_id}/logs")).json()["text"] == logs
    metrics = (await client.get(f"/api/cloud/jobs/{job_id}/metrics")).json()["points"]
    assert metrics == [{"step": 40, "loss": 0.125, "learning_rate": 0.0001}]
    await deliver(
        replicate, prediction("p_events", "processing", logs=logs, output="https://x/lora.safetensors")
    )
    assert (await job_of(app, job_id)).output == "https://x/lora.safetensors"
    done = prediction(
        "p_events",
        "succeeded",
        logs=logs,
        output="https://x/lora.safetensors",
        completed_at="2026-12-01T10:30:05.000Z",
        metrics={"predict_time": 1800.0},
    )
    assert (await deliver(replicate, done)).json()["status"] == "succeeded"
    job = await job_of(app, job_id)
    rate = load_hardware_catalogue(app.state.settings).get("l40s").usd_per_second
    assert (job.status, job.actual_cost_usd) == ("succeeded", rate * Decimal(1800))


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [("failed", "CUDA out of memory", "failed"), ("canceled", None, "canceled"), ("aborted", None, "failed")],
)
async def test_completed_ends_the_job_as_the_payload_says(
    app: FastAPI, replicate: httpx.AsyncClient, status: str, error: str | None, expected: str
) -> None:
    job_id = await tracked_job(app.state.database, f"p_{status}", status="running")
    answer = await deliver(replicate, prediction(f"p_{status}", status, error=error))
    assert answer.json()["status"] == expected
    job = await job_of(app, job_id)
    assert job.status == expected and job.provider_status == status
    if status == "failed":
        assert job.error == "CUDA out of memory" and job.error_code is not None


async def test_out_of_order_events_never_move_a_job_back(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_order")
    full = "Step 9 of 10: loss 0.2, lr 0.0001\nStep 10 of 10: loss 0.1, lr 0.0001\n"
    await deliver(replicate, prediction("p_order", "succeeded", logs=full, metrics={"predict_time": 60}))
    late = await deliver(replicate, prediction("p_order", "processing", logs=full[:34]))
    assert (late.status_code, late.json()["status"]) == (200, "succeeded")
    job = await job_of(app, job_id)
    assert (job.status, job.logs_offset, job.progress["step"]) == ("succeeded", len(full), 10)
    [latest, *_] = await recorded(client, job=job_id)
    assert latest["reason"] == "nothing newer than what the job already had"


# Allowlist and proxies ---------------------------------------------------------------------------------
async def test_an_address_outside_the_allowlist_gets_403_after_the_signature(
    app: FastAPI, client: httpx.AsyncClient, replicate: httpx.AsyncClient
) -> None:
    await put_settings(client, webhook_allowed_ips=["34.82.0.0/16", "35.185.0.0/16"])
    job_id = await tracked_job(app.state.database, "p_ip")
    async with remote_client(app, OUTSIDER) as outsider:
        refused = await deliver(outsider, prediction("p_ip", "processing"))
        unsigned = await outsider.post(HOOK, content=b"{}")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ip_not_allowed"
    assert refused.json()["error"]["details"] == {"client_ip": OUTSIDER}
    assert unsigned.json()["error"]["code"] == "signature_missing"  # the signature is checked first
    assert (await job_of(app, job_id)).status == "queued"
    allowed = await deliver(replicate, prediction("p_ip", "processing"))
    assert allowed.json()["outcome"] == "accepted"


async def test_a_spoofed_forwarding_header_from_an_untrusted_peer_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await put_settings(client, webhook_allowed_ips=["34.82.0.0/16"])
    await tracked_job(app.state.database, "p_spoof")
    spoof = {"x-forwarded-for": REPLICATE_PEER, "x-real-ip": REPLICATE_PEER}
    async with remote_client(app, OUTSIDER) as outsider:
        answer = await deliver(outsider, prediction("p_spoof", "processing"), headers=spoof)
    assert answer.status_code == 403
    assert answer.json()["error"]["details"] == {"client_ip": OUTSIDER}


async def test_a_trusted_proxy_passes_the_right_most_untrusted_hop(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await put_settings(client, webhook_allowed_ips=["34.82.0.0/16"], trusted_proxies=["10.0.0.0/8"])
    await tracked_job(app.state.database, "p_proxy")
    async with remote_client(app, "10.1.2.3") as proxy:
        # The client sent a made-up first hop; the proxies appended the real one and themselves.
        through = await deliver(
            proxy,
            prediction("p_proxy", "processing"),
            headers={"x-forwarded-for": f"35.185.9.9, {REPLICATE_PEER}, 10.9.9.9"},
        )
        forged_first = await deliver(
            proxy,
            prediction("p_proxy", "processing"),
            headers={"x-forwarded-for": f"{REPLICATE_PEER}, {OUTSIDER}"},
        )
        real_ip_only = await deliver(
            proxy, prediction("p_proxy", "processing"), headers={"x-real-ip": REPLICATE_PEER}
        )
    assert through.json()["outcome"] == "accepted"
    assert (forged_first.status_code, forged_first.json()["error"]["details"]) == (
        403,
        {"client_ip": OUTSIDER},
    )
    assert real_ip_only.json()["outcome"] == "accepted"
    assert [e["client_ip"] for e in await recorded(client)] == [REPLICATE_PEER, OUTSIDER, REPLICATE_PEER]


# Signatures off: hints ---------------------------------------------------------------------------------
async def test_with_signatures_off_a_forged_delivery_only_causes_one_read_of_the_real_prediction(
    app: FastAPI, client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.token}"}
    ) as api:
        real = await create(api, await trainer_input(api))
    job_id = await tracked_job(app.state.database, real["id"])
    await put_settings(client, require_signature=False)
    providers = (await client.get("/api/cloud/providers")).json()["providers"][0]
    assert "signature checks are off" in providers["warning"].lower()
    forged = prediction(
        real["id"], "succeeded", output="https://evil.example/lora", metrics={"predict_time": 9}
    )
    async with remote_client(app, OUTSIDER) as outsider:
        answer = await outsider.post(HOOK, content=json.dumps(forged).encode())
    assert answer.status_code == 202
    assert answer.json() == {
        "received": True,
        "outcome": "hint",
        "reason": "signature checks are off: the job is read from Replicate instead",
        "delivery_id": answer.json()["delivery_id"],
        "job_id": None,
        "status": None,
    }

    async def polled() -> Any:
        job = await job_of(app, job_id)
        return job if job.last_webhook_at is not None else None

    job = await eventually(polled, what="the hint's read of the prediction")
    assert job.status in ("queued", "running") and job.output is None
    timeline = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["timeline"]
    sources = [e["data"].get("source") for e in timeline if e["kind"] == "status" and e["data"]]
    assert "webhook-hint" in sources


async def test_without_a_token_the_secret_cannot_be_read_and_the_delivery_gets_a_503(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    answer = await deliver(replicate, prediction("p_no_token", "processing"))
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "webhook_secret_unavailable"
    assert error["message"].startswith("The webhook signing secret could not be read from Replicate (")
    assert [e["code"] for e in await recorded(client)] == ["webhook_secret_unavailable"]


async def test_a_final_delivery_wakes_the_worker_which_cleans_the_job_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIMPLETUNER_WORKER_INTERVAL", "3600")  # only a wake runs another pass
    application = create_app(load_settings())
    async with application.router.lifespan_context(application):
        await eventually(lambda: application.state.worker.passes >= 1, what="the first worker pass")
        job_id = await tracked_job(application.state.database, "p_wake", status="running")
        async with remote_client(application, REPLICATE_PEER) as replicate:
            answer = await deliver(replicate, prediction("p_wake", "succeeded"))
        assert answer.json()["status"] == "succeeded"

        async def cleaned() -> bool:
            return (await job_of(application, job_id)).cleaned_at is not None

        await eventually(cleaned, what="the clean-up the delivery's wake-up started")


# The flight recorder -----------------------------------------------------------------------------------
async def test_the_recorder_lists_and_shows_a_delivery_without_secrets(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_rec")
    body = prediction("p_rec", "processing", input={"config_json": "{}", "hf_token": "hf_" + "a" * 30})
    raw, headers = signed(body, msg_id="msg_recorded")
    extra = {"authorization": "Bearer r8_" + "b" * 37, "cookie": "s=1", "x-note": "token=r8_" + "c" * 37}
    answer = await replicate.post(HOOK, content=raw, headers={**headers, **extra}, params={"job": job_id})
    delivery_id = answer.json()["delivery_id"]
    [entry] = await recorded(client)
    assert entry == {
        "id": delivery_id,
        "webhook_id": "msg_recorded",
        "outcome": "accepted",
        "code": None,
        "reason": None,
        "received_at": entry["received_at"],
        "job_id": job_id,
        "prediction_id": "p_rec",
        "event": "start",
        "status": "processing",
        "client_ip": REPLICATE_PEER,
        "peer_ip": REPLICATE_PEER,
        "http_status": 200,
        "latency_ms": entry["latency_ms"],
        "body_sha256": hashlib.sha256(raw).hexdigest(),
        "body_size": len(raw),
        "body_kept": True,
        "replayed_at": None,
        "headers": {
            "host": "127.0.0.1:8080",
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
            "user-agent": f"python-httpx/{httpx.__version__}",
            "content-length": str(len(raw)),
            "webhook-id": "msg_recorded",
            "webhook-timestamp": headers["webhook-timestamp"],
            "webhook-signature": headers["webhook-signature"],
            "content-type": "application/json",
            "x-note": "token=[REDACTED]",
        },
    }
    assert entry["latency_ms"] >= 0
    shown = (await client.get(f"/api/cloud/webhooks/deliveries/{delivery_id}")).json()
    assert shown["body"] == {**body, "input": {"config_json": "{}", "hf_token": "[REDACTED]"}}
    assert "hf_" + "a" * 30 not in json.dumps(shown)
    missing = await client.get("/api/cloud/webhooks/deliveries/999999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "delivery_not_found")
    for path in (
        "/api/cloud/webhooks/deliveries/99999999999999999999",
        "/api/cloud/webhooks/deliveries?before=0",
    ):
        too_big = await client.get(path)  # beyond a 64-bit row id: refused, never a 500
        assert (too_big.status_code, too_big.json()["error"]["code"]) == (422, "validation_error")


async def test_the_recorder_pages_and_filters(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await tracked_job(app.state.database, "p_page")
    for status in ("starting", "processing", "succeeded"):
        await deliver(replicate, prediction("p_page", status))
    await replicate.post(HOOK, content=b"{}")
    first = (await client.get("/api/cloud/webhooks/deliveries", params={"limit": 2})).json()
    assert [e["outcome"] for e in first["deliveries"]] == ["rejected", "accepted"]
    rest = (
        await client.get(
            "/api/cloud/webhooks/deliveries", params={"limit": 2, "before": first["next_before"]}
        )
    ).json()
    assert [e["status"] for e in rest["deliveries"]] == ["processing", "starting"]
    assert rest["next_before"] is None
    rejected = await recorded(client, outcome="rejected")
    assert [e["code"] for e in rejected] == ["signature_missing"]
    async with remote_client(app, OUTSIDER) as outsider:
        closed = await outsider.get("/api/cloud/webhooks/deliveries")
    assert closed.status_code == 401  # the recorder is a management route


async def test_replay_reapplies_a_recorded_delivery(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_replay")
    done = prediction("p_replay", "succeeded", metrics={"predict_time": 10})
    delivery_id = (await deliver(replicate, done)).json()["delivery_id"]
    # A bug lost what the delivery applied: the job was put back by hand.
    async with app.state.database.session() as session:
        await repo.set_fields(session, job_id, status="running", actual_cost_usd=None)
        await session.commit()
    replayed = await client.post(f"/api/cloud/webhooks/deliveries/{delivery_id}/replay")
    assert replayed.status_code == 200, replayed.text
    answer = replayed.json()
    assert (answer["job_id"], answer["status"], answer["status_changed"]) == (job_id, "succeeded", True)
    assert answer["delivery"]["replayed_at"] is not None
    assert (await job_of(app, job_id)).status == "succeeded"
    again = (await client.post(f"/api/cloud/webhooks/deliveries/{delivery_id}/replay")).json()
    assert again["status_changed"] is False  # forward-only: replaying twice changes nothing more
    timeline = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["timeline"]
    assert [e["kind"] for e in timeline].count("webhook_replayed") == 2


async def test_only_an_accepted_delivery_with_its_body_can_be_replayed(
    replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await replicate.post(HOOK, content=b"{}")
    ignored = (await deliver(replicate, prediction("p_nobody"))).json()["delivery_id"]
    [rejected] = await recorded(client, outcome="rejected")
    for row_id, why in ((rejected["id"], "it was rejected"), (ignored, "it was ignored")):
        answer = await client.post(f"/api/cloud/webhooks/deliveries/{row_id}/replay")
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "delivery_not_replayable"
        assert why in answer.json()["error"]["message"]


class GatedReads(httpx.AsyncBaseTransport):
    """The provider client's transport, holding prediction reads until the test lets them go."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.gate = asyncio.Event()
        self.reads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/v1/predictions/" in request.url.path:
            self.reads += 1
            await self.gate.wait()
        return await self.inner.handle_async_request(request)


async def test_a_flood_of_unsigned_hints_for_one_job_is_one_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    job_id = await tracked_job(app.state.database, "p_flood", status="running")
    await put_settings(client, require_signature=False)
    gated = GatedReads()
    app.state.provider_runtime = ProviderRuntime(transport=gated)
    async with remote_client(app, OUTSIDER) as outsider:
        answers = await asyncio.gather(
            *(
                outsider.post(HOOK, content=json.dumps(prediction("p_flood", "succeeded")).encode())
                for _ in range(25)
            )
        )
    assert {answer.status_code for answer in answers} == {202}
    await eventually(lambda: gated.reads >= 1, what="the hint's read")
    gated.gate.set()
    await eventually(lambda: not app.state.webhook_receiver._hints, what="the read to finish")
    assert gated.reads == 1
    assert (await job_of(app, job_id)).status == "running"  # Replicate knows no p_flood: nothing applied


async def test_a_saved_s3_secret_key_on_its_own_reaches_neither_the_database_nor_an_answer(
    app: FastAPI, replicate: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """The security campaign's repro: an S3 secret key has no shape the patterns know, so only the
    server's own knowledge of it masks it (in the job's error, kept body and headers)."""
    s3_secret = "CampaignFourS3SecretKeyVALUE0123456789ab"
    access_key = "AKIAIOSFODNN7EXAMPLE"
    saved = await client.put(
        "/api/cloud/publishing", json={"s3": {"access_key": access_key, "secret_key": s3_secret}}
    )
    assert saved.status_code == 200, saved.text
    job_id = await tracked_job(app.state.database, "p_campaign")
    tokens = ("hf_" + "h" * 34, "r8_" + "r" * 37, "st_" + "s" * 40)
    error = f"boom {tokens[0]} {s3_secret} {tokens[1]} {tokens[2]}"
    body = prediction("p_campaign", "processing", error=error, logs=f"starting\nkey {s3_secret}\n")
    answer = await deliver(
        replicate,
        body,
        job=job_id,
        headers={"X-Amz-Security-Token": s3_secret, "X-Aws": f"{access_key}:{s3_secret}"},
    )
    assert answer.status_code == 200, answer.text
    shown = (await client.get(f"/api/cloud/webhooks/deliveries/{answer.json()['delivery_id']}")).json()
    stars = "*" * len(s3_secret)
    assert shown["body"]["error"] == f"boom {'*' * 37} {stars} {'*' * 40} {'*' * 43}"
    assert shown["body"]["logs"] == f"starting\nkey {stars}\n"
    assert (shown["headers"]["x-amz-security-token"], shown["headers"]["x-aws"]) == (
        "[REDACTED]",
        "[REDACTED]:[REDACTED]",
    )
    logs = await client.get(f"/api/cloud/jobs/{job_id}/logs")
    assert (
        logs.status_code == 200
        and "starting" in logs.text
        and s3_secret not in logs.text
        and s3_secret not in json.dumps(shown)
    )
    await app.state.database.dispose()  # everything written out to the files
    settings = app.state.settings
    stored = b"".join(path.read_bytes() for path in settings.cloud_dir.glob("jobs.db*"))
    assert s3_secret.encode() not in stored
