"""`simpletuner server --sandbox`: the emulator mounted at /sandbox of the same port, configured from
SIMPLETUNER_SANDBOX_* and reachable by the official client and the provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import replicate
from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.security.admin_token import read_admin_token
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, load_settings
from tests.support.live_server import free_port, live_server

TOKEN = "r8_" + "sandboxTestToken" + "x" * 21
UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}


def test_sandbox_mode_mounts_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", TOKEN)
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_STEP_SECONDS", "0.01")
    port = free_port()
    app = create_app(load_settings(sandbox=True, port=port))
    sandbox = app.state.sandbox_app.state.sandbox
    assert sandbox.config.step_seconds == 0.01
    assert sandbox.config.token == TOKEN
    assert sandbox.config.public_base_url == f"http://127.0.0.1:{port}/sandbox"
    with live_server(app, port=port) as base:
        client = replicate.Client(api_token=TOKEN, base_url=f"{base}/sandbox")
        assert client.accounts.current().username == "sandbox"
        with pytest.raises(replicate.exceptions.ReplicateError):
            replicate.Client(api_token="r8_" + "w" * 37, base_url=f"{base}/sandbox").accounts.current()
        status = httpx.get(f"{base}/sandbox/status/api/v2/summary.json").json()
        assert status["status"]["indicator"] == "none"
        assert httpx.get(f"{base}/sandbox/faults").status_code == 401
        faults = httpx.get(f"{base}/sandbox/faults", headers={"Authorization": f"Bearer {TOKEN}"})
        assert faults.status_code == 200
        health = httpx.get(f"{base}/healthz")
        assert health.headers["X-SimpleTuner-Sandbox"] == "sandbox: no GPUs, no charges"
        providers = httpx.get(f"{base}/api/cloud/providers").json()["providers"][0]
        assert providers["sandbox"] is True and providers["banner"] == "sandbox: no GPUs, no charges"
        assert providers["webhook_url"] == f"{base}/api/webhooks/replicate"
        assert sandbox.data_dir.is_dir()
    assert not sandbox.data_dir.exists()  # the server's shutdown stopped the sandbox and cleaned up


def test_plain_server_has_no_sandbox() -> None:
    app = create_app(load_settings())
    assert app.state.sandbox_app is None
    with live_server(app) as base:
        assert httpx.get(f"{base}/sandbox/v1/account").status_code == 404
        assert "X-SimpleTuner-Sandbox" not in httpx.get(f"{base}/healthz").headers


# --- the gate: the mounted sandbox answers only the local user (or the admin), token on top ---------

SECRETS = [
    ("GET", "/sandbox/v1/files"),
    ("GET", "/sandbox/v1/webhooks/default/secret"),
    ("POST", "/sandbox/_sandbox/reset"),
    ("GET", "/sandbox/v1/account"),
    ("GET", "/sandbox/faults"),
]


def sandbox_unauthorized(state_root: Path) -> dict[str, Any]:
    return {
        "error": {
            "code": "unauthorized",
            "message": "Authentication required: the sandbox answers only the local user.",
            "hint": "Open the login link that `simpletuner server` printed, or send `Authorization: Bearer "
            f"<admin token>` (the token is in {state_root}/cloud/admin_token).",
        }
    }


@pytest.fixture
async def sandboxed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    """`simpletuner server --sandbox` in-process, with a known sandbox token."""
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", TOKEN)
    app = create_app(load_settings(sandbox=True))
    async with app.router.lifespan_context(app):
        yield app


def asgi_client(app: FastAPI, peer: str, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", headers=headers)


@pytest.mark.parametrize(("method", "path"), SECRETS)
async def test_a_remote_caller_with_the_sandbox_token_is_refused(
    sandboxed: FastAPI, method: str, path: str, state_root: Path
) -> None:
    async with asgi_client(sandboxed, "203.0.113.7", Authorization=f"Bearer {TOKEN}") as http:
        response = await http.request(method, path)
    assert (response.status_code, response.json()) == (401, sandbox_unauthorized(state_root))


@pytest.mark.parametrize(("method", "path"), SECRETS)
async def test_a_rebinding_page_through_loopback_is_refused(
    sandboxed: FastAPI, method: str, path: str, state_root: Path
) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 but sends its own Host name."""
    async with asgi_client(
        sandboxed, "127.0.0.1", Authorization=f"Bearer {TOKEN}", Host="evil.example"
    ) as http:
        response = await http.request(method, path)
    assert (response.status_code, response.json()) == (401, sandbox_unauthorized(state_root))


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Fly-Client-IP", "X_Real_IP"])
async def test_a_forwarded_request_is_refused(sandboxed: FastAPI, header: str) -> None:
    async with asgi_client(
        sandboxed, "127.0.0.1", Authorization=f"Bearer {TOKEN}", **{header: "1.2.3.4"}
    ) as http:
        assert (await http.get("/sandbox/v1/webhooks/default/secret")).status_code == 401


async def test_the_public_status_page_and_downloads_are_gated_too(sandboxed: FastAPI) -> None:
    async with asgi_client(sandboxed, "203.0.113.7") as http:
        for path in ("/sandbox/status/api/v2/summary.json", "/sandbox/v1/files/abc/download", "/sandbox/p/x"):
            assert (await http.get(path)).status_code == 401, path


async def test_the_gate_and_the_sandbox_token_both_count(sandboxed: FastAPI) -> None:
    token = {"Authorization": f"Bearer {TOKEN}"}
    async with asgi_client(sandboxed, "203.0.113.7") as remote:
        assert (await remote.get("/sandbox/v1/account", headers=token)).status_code == 401  # the gate
        admin = read_admin_token(sandboxed.state.settings)
        assert (await remote.get("/login", params={"token": admin})).status_code == 303  # session cookie
        with_both = await remote.get("/sandbox/v1/account", headers=token)
        cookie_only = await remote.get("/sandbox/v1/account")
    assert with_both.json()["username"] == "sandbox"
    assert (cookie_only.status_code, cookie_only.json()) == (401, UNAUTHENTICATED)  # the sandbox's own
    async with asgi_client(sandboxed, "127.0.0.1") as local:
        no_token = await local.get("/sandbox/v1/account")
        with_token = await local.get("/sandbox/v1/account", headers=token)
    assert (no_token.status_code, no_token.json()) == (401, UNAUTHENTICATED)
    assert with_token.json()["username"] == "sandbox"
    async with asgi_client(sandboxed, "203.0.113.7", Authorization=f"Bearer {admin}") as bearer:
        status = await bearer.get("/sandbox/status/api/v2/summary.json")
        assert status.json()["status"]["indicator"] == "none"  # past the gate; the page needs no token


async def test_a_cross_site_reset_is_forbidden(sandboxed: FastAPI) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example"}
    async with asgi_client(sandboxed, "127.0.0.1", **headers) as http:
        response = await http.post("/sandbox/_sandbox/reset")
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_forbidden"


# --- the sandbox token: random per installation, 0600 under the state root --------------------------


def test_each_installation_gets_its_own_random_sandbox_token(tmp_path: Path, state_root: Path) -> None:
    first = create_app(load_settings(sandbox=True)).state.sandbox_app.state.sandbox.config.token
    path = state_root / "cloud" / "sandbox_token"
    assert path.read_text().strip() == first and path.stat().st_mode & 0o777 == 0o600
    assert first != DEFAULT_SANDBOX_TOKEN and len(first) == 40 and first.startswith("r8_sandbox")
    again = create_app(load_settings(sandbox=True)).state.sandbox_app.state.sandbox.config.token
    assert again == first  # the same installation keeps its token across restarts
    other = load_settings(sandbox=True, home=tmp_path / "other-home").sandbox_token
    assert other is not None and other != first


def test_the_public_test_token_is_refused_by_a_real_server(state_root: Path) -> None:
    port = free_port()
    app = create_app(load_settings(sandbox=True, port=port))
    token = (state_root / "cloud" / "sandbox_token").read_text().strip()
    with live_server(app, port=port) as base:
        default = httpx.get(
            f"{base}/sandbox/v1/account", headers={"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
        )
        mine = httpx.get(f"{base}/sandbox/v1/account", headers={"Authorization": f"Bearer {token}"})
        validate = httpx.get(f"{base}/api/cloud/providers/replicate/validate", timeout=30).json()
    assert (default.status_code, default.json()) == (401, UNAUTHENTICATED)
    assert mine.json()["username"] == "sandbox"
    assert validate["valid"] is True and validate["token_source"] == "sandbox"


def test_with_local_trust_off_the_server_still_reaches_its_own_sandbox(state_root: Path) -> None:
    """Bound to every interface, local trust is off, yet the provider's loopback calls to the mounted
    sandbox (with the sandbox token) and to its status page (no token) still work; a loopback caller
    without the token is refused by the gate."""
    port = free_port()
    app = create_app(load_settings(sandbox=True, port=port, host="0.0.0.0"))
    with live_server(app, port=port) as base, httpx.Client(base_url=base, timeout=30) as http:
        admin = {"Authorization": f"Bearer {read_admin_token(app.state.settings)}"}
        assert http.get("/api/cloud/providers").status_code == 401  # trust is off for us too
        validate = http.get("/api/cloud/providers/replicate/validate", headers=admin).json()
        status = http.get("/api/cloud/system-status", headers=admin).json()
        versions = http.get("/api/cloud/providers/replicate/versions", headers=admin).json()
        no_token = http.get("/sandbox/v1/account")
    assert validate["valid"] is True and validate["account"]["username"] == "sandbox"
    assert status["indicator"] == "none"
    assert len(versions["versions"]) >= 1
    assert (no_token.status_code, no_token.json()) == (401, sandbox_unauthorized(state_root))
