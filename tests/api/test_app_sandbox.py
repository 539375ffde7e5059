"""`simpletuner server --sandbox`: the emulator mounted at /sandbox of the same port, configured from
SIMPLETUNER_SANDBOX_* and reachable by the official client and the provider."""

from __future__ import annotations

import httpx
import pytest

import replicate
from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port, live_server

TOKEN = "r8_" + "sandboxTestToken" + "x" * 21


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
