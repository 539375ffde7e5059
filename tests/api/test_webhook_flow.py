"""The sandbox's real webhooks reach `simpletuner server --sandbox` over a socket: a job is followed
by signed deliveries (polling slowed), each recorded as accepted, and a rotation of the sandbox's
signing key mid-run is picked up."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.sandbox.config import new_webhook_secret
from simpletuner_cloud.services.datasets import install_example
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.waiting import eventually_sync

EXAMPLE = {"config": "flux-lora-example", "consent": True, "delivery": "none"}


@pytest.fixture
def server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    # Slow polling: what moves the job here is the webhooks.
    with sandbox_mode_server(poll_seconds=30, log_poll_seconds=30, job_lease_seconds=5) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.05, 0.0, 10
        config.webhook_throttle_seconds = 0.05
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield http, app


def finished(http: httpx.Client, job_id: str) -> dict[str, object]:
    def probe() -> dict[str, object] | None:
        job: dict[str, object] = http.get(f"/api/cloud/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "canceled") else None

    return eventually_sync(probe, timeout=60, interval=0.05, what=f"job {job_id} finishing")


def test_a_sandbox_job_is_followed_by_its_signed_webhooks(server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = server
    sandbox = app.state.sandbox_app.state.sandbox
    job_id = http.post("/api/cloud/jobs/submit", json=EXAMPLE).json()["job_id"]

    def running() -> bool:
        return http.get(f"/api/cloud/jobs/{job_id}").json()["status"] == "running"

    eventually_sync(running, timeout=60, interval=0.02, what="the job running")
    sandbox.webhook_secret = new_webhook_secret()  # rotated mid-run: the receiver refetches it
    done = finished(http, job_id)
    assert done["status"] == "succeeded"
    deliveries = http.get("/api/cloud/webhooks/deliveries", params={"job": job_id}).json()["deliveries"]
    outcomes = {entry["outcome"] for entry in deliveries}
    assert outcomes <= {"accepted", "duplicate"} and "accepted" in outcomes
    assert deliveries[0]["event"] == "completed" and deliveries[0]["status"] == "succeeded"
    sent = [r for r in sandbox.webhooks.records if r["job_id"] == done["prediction_id"]]
    assert sent and all(r["outcome"] == "200" for r in sent)
    sources = {
        event["data"].get("source")
        for event in done["timeline"]  # type: ignore[attr-defined]
        if event["kind"] == "status" and event["data"]
    }
    assert "webhook" in sources
