"""Several `simpletuner server` processes on one PostgreSQL share the work: 50 jobs submitted to
both, with sandbox faults, each reach their end once with exactly one prediction; a job is driven by
one worker at a time (leases), the upload of the shared dataset happens once at a time across
servers (the upload lock), and a client of one server sees what another server did."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simpletuner_cloud.services.datasets import install_example
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port
from tests.support.postgres import fresh_database
from tests.support.provider_sandbox import RunningSandbox, set_faults, standalone_sandbox
from tests.support.waiting import eventually_sync

pytestmark = pytest.mark.postgres
SUBMIT = "/api/cloud/jobs/submit"
EXAMPLE = {"config": "flux-lora-example", "consent": True, "delivery": "none"}
JOBS = 50


@pytest.fixture
def replicate(tmp_path: Path) -> Iterator[RunningSandbox]:
    with standalone_sandbox(
        tmp_path / "sandbox", step_seconds=0.05, boot_seconds=0.0, max_simulated_steps=5
    ) as box:
        yield box


@pytest.fixture
def servers(tmp_path: Path, replicate: RunningSandbox) -> Iterator[list[str]]:
    with fresh_database() as url:
        processes, urls = [], []
        for n in range(2):
            home = tmp_path / f"state-{n}"  # own state roots: only the database is shared
            install_example(load_settings(home=home))
            port = free_port()
            env = {
                **os.environ,
                "SIMPLETUNER_HOME": str(home),
                "SIMPLETUNER_DATABASE_URL": url,
                "REPLICATE_API_TOKEN": replicate.token,
                "SIMPLETUNER_REPLICATE_BASE_URL": replicate.url,
                "SIMPLETUNER_STATUS_PAGE_URL": replicate.status_url,
                "SIMPLETUNER_POLL_SECONDS": "0.3",
                "SIMPLETUNER_LOG_POLL_SECONDS": "0.3",
                "SIMPLETUNER_JOB_LEASE_SECONDS": "5",
                "SIMPLETUNER_CREATE_LOOKUP_SECONDS": "1",
                "SIMPLETUNER_WORKER_INTERVAL": "0.1",
                "SIMPLETUNER_WORKER_BATCH": "20",
            }
            log = open(tmp_path / f"server-{n}.log", "wb")  # the child keeps its own copy
            command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(port)]
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            urls.append(f"http://127.0.0.1:{port}")
        try:
            for base in urls:
                eventually_sync(
                    lambda base=base: _healthy(base), timeout=60, interval=0.05, what=f"{base} up"
                )
            yield urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_fifty_jobs_on_two_servers_end_once_with_one_prediction_each(
    servers: list[str], replicate: RunningSandbox
) -> None:
    set_faults(
        replicate.url,
        replicate.token,
        {
            "rate_limit": {"count": 3, "retry_after": 1, "route": "/v1/predictions", "method": "POST"},
            "server_errors": {
                "count": 2,
                "status": 503,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            },
            "connection_drops": {
                "count": 2,
                "after_create": True,
                "route": "/v1/predictions",
                "method": "POST",
            },
        },
    )
    with httpx.Client(timeout=60) as http:
        ids = []
        for n in range(JOBS):
            answer = http.post(f"{servers[n % 2]}{SUBMIT}", json=EXAMPLE)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["job_id"])

        def all_done() -> list[dict[str, Any]] | None:
            page = http.get(f"{servers[1]}/api/cloud/jobs", params={"limit": 200}).json()
            done = [j for j in page["jobs"] if j["status"] in ("succeeded", "failed", "canceled")]
            return page["jobs"] if page["total"] == JOBS and len(done) == JOBS else None

        jobs = eventually_sync(all_done, timeout=300, interval=0.5, what="all 50 jobs finishing")
        assert {j["id"] for j in jobs} == set(ids)
        assert [j["status"] for j in jobs] == ["succeeded"] * JOBS
        workers = set()
        for job_id in ids:
            timeline = http.get(f"{servers[0]}/api/cloud/jobs/{job_id}").json()["timeline"]
            workers |= {e["data"]["worker"] for e in timeline if e["to_status"] == "packaging"}
        assert len(workers) == 2  # both servers drove jobs (each worker names itself on the timeline)
        # Each job entered each status once, whichever server drove it.
        for job_id in ids[:10]:
            timeline = http.get(f"{servers[0]}/api/cloud/jobs/{job_id}").json()["timeline"]
            statuses = [e["to_status"] for e in timeline if e["kind"] == "status"]
            order = ["created", "packaging", "uploading", "submitting", "queued", "running", "succeeded"]
            # A poll may see `running` only after it ended (5 fast steps), so it can be skipped; the
            # rest is entered once each, in order.
            assert statuses == [s for s in order if s in statuses] and len(statuses) >= len(order) - 1
    listed: list[str] = []
    page = replicate.get("/v1/predictions")
    while True:
        listed += [p["id"] for p in page["results"]]
        if not page.get("next"):
            break
        page = httpx.get(page["next"], headers={"Authorization": f"Bearer {replicate.token}"}).json()
    assert sorted(listed) == sorted(j["prediction_id"] for j in jobs)  # one prediction per job, no extra
    uploads = [f for f in replicate.get("/v1/files")["results"]]
    assert len(uploads) <= 1  # the same archive was uploaded once and reused (then deleted at the end)
