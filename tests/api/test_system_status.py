"""`GET /api/cloud/system-status` in `simpletuner server --sandbox` mode: the status page is the
sandbox's (`/sandbox/status/api/v2/summary.json`) and every failure mode degrades to `unknown`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.replicate.factory import status_page_base_url
from simpletuner_cloud.replicate.status_page import StatusPageReader
from simpletuner_cloud.services.provider import ProviderRuntime
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port
from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server, set_faults

READER_TIMEOUT = 0.3  # the sandbox's "timeout" mode hangs 1 s
# Every other answer comes at once; a loaded machine may still take seconds to serve it over loopback.
GENEROUS_TIMEOUT = 10.0
DOWN_PAGE = f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture
async def client_for_down_page() -> AsyncIterator[httpx.AsyncClient]:
    """A real deployment (not sandbox mode) whose status page URL refuses connections."""
    app = create_app(load_settings(status_page_url=DOWN_PAGE))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            yield http


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    with sandbox_mode_server(home=tmp_path_factory.mktemp("home")) as running:
        yield running


@pytest.fixture
def http(server: tuple[str, FastAPI]) -> Iterator[httpx.Client]:
    base, app = server
    runtime = ProviderRuntime()
    runtime.status_page = StatusPageReader(
        status_page_base_url(app.state.settings),
        timeout=GENEROUS_TIMEOUT,
        cache_seconds=0,
        failure_cache_seconds=0,
    )
    app.state.provider_runtime = runtime
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        yield client
    set_faults(f"{base}/sandbox", SANDBOX_TOKEN, {"status_page": {"mode": "ok", "indicator": "none"}})


def base(http: httpx.Client) -> str:
    return str(http.base_url).rstrip("/")


def status(http: httpx.Client, **fault: Any) -> dict[str, Any]:
    set_faults(f"{base(http)}/sandbox", SANDBOX_TOKEN, {"status_page": fault})
    response = http.get("/api/cloud/system-status")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_operational(http: httpx.Client) -> None:
    assert status(http, mode="ok", indicator="none") == {
        "indicator": "none",
        "description": "All Systems Operational",
        "reason": None,
        "components": [],
        "incidents": [],
        "source": f"{base(http)}/sandbox/status/api/v2/summary.json",
        "checked_at": ANY,
    }


def test_minor_incident(http: httpx.Client) -> None:
    answer = status(http, mode="ok", indicator="minor")
    assert (answer["indicator"], answer["description"]) == ("minor", "Partially Degraded Service")
    assert {"name": "API", "status": "degraded_performance"} in answer["components"]
    assert answer["incidents"][0]["impact"] == "minor"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("timeout", f"the status page did not answer within {READER_TIMEOUT:g} s"),
        ("500", "the status page answered HTTP 500"),
        ("html", "the status page answered text/html, not JSON"),
        ("malformed", "the status page answered malformed JSON"),
        ("redirect", "the status page redirected too many times"),
    ],
)
def test_failures_degrade_to_unknown(
    http: httpx.Client, server: tuple[str, FastAPI], mode: str, reason: str
) -> None:
    # Only the hang needs the short timeout; a redirect loop on a loaded machine may take longer.
    if mode == "timeout":
        server[1].state.provider_runtime.status_page.timeout = READER_TIMEOUT
    answer = status(http, mode=mode, indicator="critical")
    assert answer == {
        "indicator": "unknown",
        "description": "Status unknown",
        "reason": reason,
        "components": [],
        "incidents": [],
        "source": f"{base(http)}/sandbox/status/api/v2/summary.json",
        "checked_at": ANY,
    }


async def test_a_status_page_that_is_down_is_unknown(client_for_down_page: httpx.AsyncClient) -> None:
    response = await client_for_down_page.get("/api/cloud/system-status")
    assert response.status_code == 200
    assert response.json() == {
        "indicator": "unknown",
        "description": "Status unknown",
        "reason": "could not reach the status page (ConnectError)",
        "components": [],
        "incidents": [],
        "source": f"{DOWN_PAGE}/api/v2/summary.json",
        "checked_at": ANY,
    }


def test_the_default_reader_uses_a_3_s_timeout_and_a_minute_of_cache() -> None:
    settings = load_settings(sandbox=True, port=4000)
    reader = ProviderRuntime().status_reader(settings, ReplicateSettings())
    assert (reader.timeout, reader.cache_seconds) == (3.0, 60.0)
    assert reader.source == "http://127.0.0.1:4000/sandbox/status/api/v2/summary.json"
    assert StatusPageReader("https://www.replicatestatus.com").timeout <= 3.0


def test_sandbox_mode_providers_validate_and_token(http: httpx.Client) -> None:
    providers = http.get("/api/cloud/providers").json()
    assert providers == {
        "providers": [
            {
                "id": "replicate",
                "name": "Replicate",
                "configured": True,
                "token_source": "sandbox",
                "token_check": "valid",
                "ready": True,
                "sandbox": True,
                "banner": "sandbox: no GPUs, no charges",
                "webhook_url": f"{base(http)}/api/webhooks/replicate",
                "hardware": "l40s",
                "model": "simpletuner/advanced-trainer",
                "not_ready_reason": None,
                "warning": None,
            }
        ]
    }
    assert http.get("/api/cloud/providers/replicate/validate").json() == {
        "valid": True,
        "account": {"username": "sandbox", "name": "Sandbox (offline Replicate emulator)", "type": "user"},
        "token_source": "sandbox",
        "token": "r8_...ken0",
        "sandbox": True,
    }
    saved = http.put("/api/cloud/providers/replicate/token", json={"api_token": SANDBOX_TOKEN}).json()
    assert (saved["token_source"], saved["token"]) == ("sandbox", "r8_...ken0")
    assert saved["note"].startswith("Sandbox mode uses the sandbox token")
    http.delete("/api/cloud/providers/replicate/token")
    real_looking = http.put("/api/cloud/providers/replicate/token", json={"api_token": "r8_" + "a" * 37})
    assert real_looking.status_code == 422  # Replicate refusing a token is not a failed login (401)
    assert real_looking.json() == {
        "error": {
            "code": "token_invalid",
            "message": "Invalid token",
            "hint": "This server runs with --sandbox: the offline emulator accepts only its own token "
            "(SIMPLETUNER_SANDBOX_TOKEN). Restart without --sandbox to validate and save a real "
            "Replicate token.",
        }
    }
    versions = http.get("/api/cloud/providers/replicate/versions").json()
    assert versions["model"] == "simpletuner/advanced-trainer" and len(versions["versions"]) == 2
    assert http.get("/api/cloud/providers/replicate/billing").json()["sandbox"] is True
