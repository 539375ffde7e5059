"""The kill test: `simpletuner server` is killed with SIGKILL at each step of a submission
(`SIMPLETUNER_FAULT_POINT`) and while a job runs, then started again on the same state. Every job
must end in the right state, and the sandbox (a separate server, which survives the kill) must hold
exactly one prediction per job: nothing lost, nothing created twice."""

from __future__ import annotations

import os
import signal
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
from tests.support.provider_sandbox import RunningSandbox, standalone_sandbox
from tests.support.waiting import eventually_sync

SUBMIT = "/api/cloud/jobs/submit"
EXAMPLE = {"config": "flux-lora-example", "consent": True, "delivery": "none"}


@pytest.fixture
def replicate(tmp_path: Path) -> Iterator[RunningSandbox]:
    with standalone_sandbox(
        tmp_path / "sandbox", step_seconds=0.05, boot_seconds=0.0, max_simulated_steps=10
    ) as box:
        yield box


class Server:
    """One `simpletuner server` process at a time, on a fixed port and state root."""

    def __init__(self, home: Path, replicate: RunningSandbox) -> None:
        self.home, self.replicate = home, replicate
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, fault_point: str | None = None) -> None:
        self.runs += 1
        env = {
            **os.environ,
            "SIMPLETUNER_HOME": str(self.home),
            "REPLICATE_API_TOKEN": self.replicate.token,
            "SIMPLETUNER_REPLICATE_BASE_URL": self.replicate.url,
            "SIMPLETUNER_STATUS_PAGE_URL": self.replicate.status_url,
            "SIMPLETUNER_POLL_SECONDS": "0.2",
            "SIMPLETUNER_LOG_POLL_SECONDS": "0.2",
            "SIMPLETUNER_JOB_LEASE_SECONDS": "2",
            "SIMPLETUNER_CREATE_LOOKUP_SECONDS": "1",
            "SIMPLETUNER_WORKER_INTERVAL": "0.05",
        }
        env.pop("SIMPLETUNER_FAULT_POINT", None)
        if fault_point:
            env["SIMPLETUNER_FAULT_POINT"] = fault_point
        log = open(self.home / f"server-{self.runs}.log", "wb")  # the child keeps its own copy
        command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually_sync(healthy, timeout=60, interval=0.05, what="the server answering /healthz")

    def output(self) -> str:
        return (self.home / f"server-{self.runs}.log").read_text(errors="replace")

    def killed(self) -> bool:
        return self.process is not None and self.process.poll() == -signal.SIGKILL

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=30).json()


@pytest.fixture
def server(tmp_path: Path, replicate: RunningSandbox) -> Iterator[Server]:
    home = tmp_path / "state"
    install_example(load_settings(home=home))
    running = Server(home, replicate)
    yield running
    running.stop()


def finished(server: Server, job_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = server.get(f"/api/cloud/jobs/{job_id}")
        cleaned = any(e["kind"] == "cleaned_up" for e in job["timeline"])
        return job if job["status"] in ("succeeded", "failed", "canceled") and cleaned else None

    return eventually_sync(probe, timeout=120, interval=0.1, what=f"job {job_id} finishing after the restart")


def predictions_for(replicate: RunningSandbox) -> list[dict[str, Any]]:
    return [replicate.get(f"/v1/predictions/{pid}") for pid in replicate.listed("predictions")]


@pytest.mark.parametrize("point", ["after_upload", "before_create", "after_create"])
def test_killed_at_a_step_of_submit_the_job_ends_with_one_prediction(
    server: Server, replicate: RunningSandbox, point: str
) -> None:
    server.start(fault_point=point)
    submitted = httpx.post(f"{server.url}{SUBMIT}", json=EXAMPLE, timeout=30)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]
    eventually_sync(server.killed, timeout=60, interval=0.05, what=f"the kill at {point}")
    created = predictions_for(replicate)
    assert len(created) == (1 if point == "after_create" else 0)

    server.start()  # the same state root, no fault point
    job = finished(server, job_id)
    assert job["status"] == "succeeded", job
    made = predictions_for(replicate)
    assert [p["id"] for p in made] == [job["prediction_id"]]
    assert replicate.listed("files") == []  # the dataset file was deleted after the job
    if point == "after_create":
        assert any(e["kind"] == "create_recovered" for e in job["timeline"])


def test_killed_while_running_the_job_is_followed_to_its_end(
    server: Server, replicate: RunningSandbox
) -> None:
    server.start()
    job_id = httpx.post(f"{server.url}{SUBMIT}", json=EXAMPLE, timeout=30).json()["job_id"]
    eventually_sync(
        lambda: server.get(f"/api/cloud/jobs/{job_id}")["status"] == "running",
        timeout=60,
        interval=0.02,
        what="the job running",
    )
    server.kill()
    server.start()
    job = finished(server, job_id)
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions_for(replicate)] == [job["prediction_id"]]
    logs = server.get(f"/api/cloud/jobs/{job_id}/logs")["text"]
    assert logs == replicate.get(f"/v1/predictions/{job['prediction_id']}")["logs"]


def test_killed_during_packaging_the_job_is_packaged_again(server: Server, replicate: RunningSandbox) -> None:
    server.start(fault_point="during_packaging")
    job_id = httpx.post(f"{server.url}{SUBMIT}", json=EXAMPLE, timeout=30).json()["job_id"]
    eventually_sync(server.killed, timeout=60, interval=0.05, what="the kill while packaging")
    assert replicate.listed("files") == []
    server.start()
    job = finished(server, job_id)
    assert job["status"] == "succeeded"
    assert len(predictions_for(replicate)) == 1
    leftovers = list((server.home / "cloud" / "uploads").glob("*.zip"))
    assert leftovers == []


def test_killed_while_webhooks_arrive_the_job_ends_once(server: Server, replicate: RunningSandbox) -> None:
    """Webhooks on (the public URL is this server): the kill lands while deliveries flow; the sandbox
    retries the terminal one, polling covers the rest, and nothing is applied twice."""
    # A run of about 4 s, so the kill lands while it runs: at 0.5 s a loaded machine saw it end first.
    replicate.app.state.sandbox.config.step_seconds = 0.4
    server.start()
    settings = httpx.put(
        f"{server.url}/api/cloud/providers/replicate", json={"public_url": server.url}, timeout=30
    )
    assert settings.status_code == 200, settings.text
    job_id = httpx.post(f"{server.url}{SUBMIT}", json=EXAMPLE, timeout=30).json()["job_id"]

    def webhooks_arrived() -> bool:
        timeline = server.get(f"/api/cloud/jobs/{job_id}")["timeline"]
        return any((e.get("data") or {}).get("source") == "webhook" for e in timeline)

    eventually_sync(webhooks_arrived, timeout=60, interval=0.02, what="a webhook applied")
    server.kill()
    assert replicate.get(f"/v1/predictions/{replicate.listed('predictions')[0]}")["status"] != "succeeded"
    server.start()
    job = finished(server, job_id)
    assert job["status"] == "succeeded"
    assert [p["id"] for p in predictions_for(replicate)] == [job["prediction_id"]]
    statuses = [e["to_status"] for e in job["timeline"] if e["kind"] == "status"]
    assert len(statuses) == len(set(statuses))  # no status entered twice
    logs = server.get(f"/api/cloud/jobs/{job_id}/logs")["text"]
    assert logs == replicate.get(f"/v1/predictions/{job['prediction_id']}")["logs"]
