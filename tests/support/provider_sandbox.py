"""Provider tests against the sandbox: a standalone sandbox on a free port (the server is pointed at
it with REPLICATE_API_TOKEN and SIMPLETUNER_REPLICATE_BASE_URL), a `simpletuner server --sandbox`
app under uvicorn, fault injection, a real local HTTP proxy process (proxy.py), and a loopback
receiver that records the headers our client really sends."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, load_settings
from simpletuner_cloud.store.jobs import apply_status, create_job
from tests.support.live_server import free_port, live_server

SANDBOX_TOKEN = DEFAULT_SANDBOX_TOKEN
MASKED_SANDBOX_TOKEN = "r8_...ken0"


@dataclass
class RunningSandbox:
    url: str  # the Replicate base URL (no /v1)
    token: str
    app: FastAPI

    @property
    def status_url(self) -> str:
        return f"{self.url}/status"

    def faults(self, **faults: Any) -> dict[str, Any]:
        return set_faults(self.url, self.token, faults)

    def versions(self, model: str = "simpletuner/advanced-trainer") -> list[str]:
        return [v["id"] for v in self.version_list(model)]

    def version_list(self, model: str = "simpletuner/advanced-trainer") -> list[dict[str, Any]]:
        return self.get(f"/v1/models/{model}/versions")["results"]  # type: ignore[no-any-return]

    def listed(self, collection: str) -> list[str]:
        """Ids on the first page of `predictions`, `trainings` or `files` (newest first)."""
        return [item["id"] for item in self.get(f"/v1/{collection}")["results"]]

    def get(self, path: str) -> Any:
        with httpx.Client(trust_env=False, headers={"Authorization": f"Bearer {self.token}"}) as http:
            response = http.get(f"{self.url}{path}")
        response.raise_for_status()
        return response.json()


def dataset_zip(path: Path) -> Path:
    """A tiny dataset the sandbox's trainer accepts (one PNG-looking image)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("plushie_0.png", b"\x89PNG\r\n\x1a\n" + bytes(16))
    return path


def trainer_config() -> str:
    config = {
        "model_family": "flux",
        "lora_rank": 4,
        "max_train_steps": 10,
        "num_train_epochs": 0,
        "learning_rate": 1e-4,
    }
    return json.dumps(config)


def set_faults(sandbox_url: str, token: str, faults: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(trust_env=False, headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.post(f"{sandbox_url}/faults", json=faults)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


@contextmanager
def standalone_sandbox(data_dir: Path, **config: Any) -> Iterator[RunningSandbox]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config.setdefault("status_page_timeout_seconds", 1.0)
    app = create_sandbox_app(SandboxConfig(public_base_url=url, data_dir=data_dir, **config))
    with live_server(app, port=port):
        yield RunningSandbox(url, app.state.sandbox.config.token, app)


@contextmanager
def sandbox_mode_server(**overrides: Any) -> Iterator[tuple[str, FastAPI]]:
    """`simpletuner server --sandbox` on a free port: the provider's calls to
    http://127.0.0.1:<port>/sandbox really travel over a socket to this same server. Its sandbox token
    is the known test token unless `sandbox_token` says otherwise (the product's is random)."""
    port = free_port()
    overrides.setdefault("sandbox_token", SANDBOX_TOKEN)
    app = create_app(load_settings(sandbox=True, port=port, **overrides))
    with live_server(app, port=port) as base:
        app.state.sandbox_app.state.sandbox.config.status_page_timeout_seconds = 1.0
        yield base, app


async def record_job(
    session: AsyncSession,
    status: str,
    *,
    hardware: str = "l40s",
    started: datetime | None = None,
    completed: datetime | None = None,
    cost: str | None = None,
) -> str:
    """A job as the jobs layer leaves it, through the store's own functions: created, maybe started,
    maybe finished with a recorded cost."""
    job, _ = await create_job(
        session, config_name="flux-lora", hardware=hardware, model="simpletuner/advanced-trainer"
    )
    if started is not None:
        await apply_status(session, job.id, "running", at=started, started_at=started)
    if status != "running" and (status != "created"):
        fields: dict[str, Any] = {"actual_cost_usd": Decimal(cost)} if cost is not None else {}
        await apply_status(session, job.id, status, at=completed, completed_at=completed, **fields)
    return job.id


@dataclass
class RecordingReplicate:
    """A loopback stand-in for Replicate that records every request's headers: the first
    `failures` calls to each path answer 503, then `/v1/account` and a one-page version list."""

    url: str
    seen: list[tuple[str, dict[str, str]]]


@contextmanager
def recording_replicate(failures: int = 0) -> Iterator[RecordingReplicate]:
    seen: list[tuple[str, dict[str, str]]] = []
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(request: Request, path: str) -> JSONResponse:
        seen.append((f"{request.method} /{path}", dict(request.headers)))
        if sum(1 for what, _ in seen if what == seen[-1][0]) <= failures:
            return JSONResponse({"detail": "unavailable"}, status_code=503)
        if path == "v1/account":
            return JSONResponse({"type": "user", "username": "ana", "name": "Ana"})
        return JSONResponse({"next": None, "previous": None, "results": []})

    with live_server(app) as url:
        yield RecordingReplicate(url, seen)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("proxy.py exited at start-up")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("proxy.py did not start")


@dataclass
class RunningProxy:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def carried(self, path_fragment: str, timeout: float = 30.0) -> bool:
        """True once the proxy's access log shows a request whose path contains the fragment (the
        log line is written after the response, so give it a moment; on a loaded machine, several)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path_fragment in self.log():
                return True
            time.sleep(0.05)
        return False


@contextmanager
def http_proxy(log_dir: Path) -> Iterator[RunningProxy]:
    """A real forwarding proxy process (proxy.py from PyPI) on a free port, stopped by its pid."""
    port = free_port()
    log_path = log_dir / f"proxy-{port}.log"
    executable = Path(sys.executable).with_name("proxy")
    command = [str(executable), "--hostname", "127.0.0.1", "--port", str(port)]
    command += ["--num-workers", "1", "--num-acceptors", "1", "--log-file", str(log_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, time.monotonic() + 20)
        yield RunningProxy(f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
