"""Every sandbox fault converges to the right end state with exactly one prediction per job, and no
job's status ever moves backwards: 429 with Retry-After on the create, 5xx bursts, a create answered
with a 5xx or a dropped connection after it succeeded (the job is found, never created twice), slow
starts, failure at step N, a scripted CUDA out-of-memory. The server runs as `simpletuner server
--sandbox` on a socket; webhooks are on, so both signals race."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.domain.jobs import JobStatus
from tests.support.job_server import EXAMPLE, SUBMIT, job_server, sandbox
from tests.support.waiting import eventually_sync

ORDER = ["created", "packaging", "uploading", "submitting", "queued", "running", "succeeded"]


@pytest.fixture
def server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    with job_server(steps=10, create_lookup_seconds=1.0) as running:
        yield running


def run_job(http: httpx.Client, faults: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    sandbox(http, "POST", "/faults", json=faults)
    submitted = http.post(SUBMIT, json=EXAMPLE)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/cloud/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        cleaned = any(e["kind"] == "cleaned_up" for e in job["timeline"])
        return (
            job
            if JobStatus(job["status"]) in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
            and cleaned
            else None
        )

    job = eventually_sync(finished, timeout=timeout, interval=0.05, what=f"job {job_id} finishing")
    forward = [s for s in seen if s in ORDER]
    assert forward == sorted(forward, key=ORDER.index), f"status moved backwards: {seen}"
    statuses = [e["to_status"] for e in job["timeline"] if e["kind"] == "status"]
    assert len(statuses) == len(set(statuses)), statuses  # each status entered once
    return job


def predictions(http: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox(http, "GET", "/v1/predictions")["results"])


def test_429_on_create_waits_and_creates_once(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(
        http, {"rate_limit": {"count": 2, "retry_after": 1, "route": "/v1/predictions", "method": "POST"}}
    )
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions(http)] == [job["prediction_id"]]
    assert any(e["kind"] == "create_failed" and e["data"]["outcome"] == "not_sent" for e in job["timeline"])


@pytest.mark.parametrize(
    "fault",
    [
        {
            "server_errors": {
                "count": 1,
                "status": 503,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            }
        },
        {
            "server_errors": {
                "count": 1,
                "status": 502,
                "html": True,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            }
        },
        {
            "connection_drops": {
                "count": 1,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            }
        },
    ],
    ids=["503-after-create", "edge-502-after-create", "dropped-connection-after-create"],
)
def test_a_create_of_unknown_fate_is_found_not_repeated(
    server: tuple[httpx.Client, FastAPI], fault: dict[str, Any]
) -> None:
    http, _ = server
    job = run_job(http, fault)
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions(http)] == [job["prediction_id"]]  # the one created, adopted
    kinds = [e["kind"] for e in job["timeline"]]
    # Found by the list lookup or by its own `start` webhook (its URL names the job), never resent.
    assert "create_failed" in kinds and "create_retry" not in kinds
    assert job["submitted_at"] is not None


def test_a_5xx_before_the_create_is_looked_for_then_sent_once(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(
        http, {"server_errors": {"count": 1, "status": 503, "route": "/v1/predictions", "method": "POST"}}
    )
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions(http)] == [job["prediction_id"]]
    kinds = [e["kind"] for e in job["timeline"]]
    assert "create_retry" in kinds  # nothing was found in the lookup window, so it was sent again


def test_5xx_bursts_while_polling_converge(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(
        http, {"server_errors": {"count": 6, "status": 500, "route": "/v1/predictions/", "method": "GET"}}
    )
    assert job["status"] == "succeeded" and len(predictions(http)) == 1


def test_a_slow_start_is_queued_then_runs(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(http, {"starting_delay": 1.5})
    assert job["status"] == "succeeded"
    statuses = [e["to_status"] for e in job["timeline"] if e["kind"] == "status"]
    assert statuses[-3:] == ["queued", "running", "succeeded"]


def test_failure_at_step_n_fails_with_the_trainer_error(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(http, {"fail_at_step": 3})
    assert job["status"] == "failed" and job["error"]["code"] == "trainer_failed"
    assert len(predictions(http)) == 1


def test_cuda_oom_carries_the_seed_hints(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(http, {"scripts": [{"outcome": "fail", "preset": "cuda_oom"}]})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "trainer_out_of_memory"
    for advice in ("batch size", "gradient checkpointing", "LoRA instead of a full fine-tune"):
        assert advice in job["error"]["hint"]


def test_a_canceled_script_ends_canceled(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    job = run_job(http, {"scripts": [{"outcome": "cancel", "at_step": 2}]})
    assert job["status"] == "canceled" and job["provider_status"] == "canceled"


def test_with_webhooks_lost_the_unknown_create_is_found_in_the_list(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, _ = server
    job = run_job(
        http,
        {
            "webhooks": {"drop": True},
            "server_errors": {
                "count": 1,
                "status": 503,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            },
        },
    )
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions(http)] == [job["prediction_id"]]
    kinds = [e["kind"] for e in job["timeline"]]
    assert "create_recovered" in kinds and "create_retry" not in kinds
