"""`simpletuner sandbox`: flags become the POST /faults body; the command prints URL and token, and
really serves (a subprocess on a free port, with its own token and a fault flag)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app
from simpletuner_cloud.cli import sandbox as sandbox_cli
from simpletuner_cloud.sandbox.faults import Faults
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN
from tests.support.live_server import free_port
from tests.support.waiting import eventually_sync

runner = CliRunner()
UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}


def test_no_flags_no_faults() -> None:
    assert sandbox_cli.fault_update() == {}


def test_every_fault_flag_maps_to_the_fault_json() -> None:
    update = sandbox_cli.fault_update(
        fail_at_step=4,
        starting_delay=3,
        rate_limit_next=2,
        retry_after=9,
        errors_next=1,
        error_status=502,
        error_html=True,
        errors_after_create=True,
        latency=0.5,
        late_validation=True,
        webhook_drop=["logs"],
        webhook_duplicate=True,
        webhook_delay=1.5,
        webhook_reorder=True,
        status_indicator="minor",
    )
    assert update == {
        "fail_at_step": 4,
        "starting_delay": 3,
        "rate_limit": {"count": 2, "retry_after": 9},
        "server_errors": {"count": 1, "status": 502, "html": True, "after_create": True},
        "latency": {"seconds": 0.5},
        "late_validation": True,
        "webhooks": {"drop": ["logs"], "duplicate": True, "delay": 1.5, "reorder": True},
        "status_page": {"indicator": "minor"},
    }
    Faults().merged(update)  # and the sandbox accepts it
    assert sandbox_cli.fault_update(webhook_drop=["all"])["webhooks"]["drop"] is True


def test_run_prints_url_and_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state_root: Path) -> None:
    served: dict[str, Any] = {}

    def fake_run(served_app: Any, **options: Any) -> None:
        served.update(options, app=served_app)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_STEP_SECONDS", "0.25")
    result = runner.invoke(
        app,
        [
            "sandbox",
            "--port",
            "5077",
            "--fail-at-step",
            "3",
            "--webhook-drop",
            "logs",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    # the installation's own random token, kept 0600 under the state root; never the public test one
    token_file = state_root / "cloud" / "sandbox_token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600 and token != DEFAULT_SANDBOX_TOKEN
    assert "http://127.0.0.1:5077" in result.output and f"token:    {token}" in result.output
    assert DEFAULT_SANDBOX_TOKEN not in result.output and result.stderr == ""
    assert "no GPUs, no charges" in result.output
    sandbox = served["app"].state.sandbox
    assert sandbox.config.token == token
    assert (served["host"], served["port"]) == ("127.0.0.1", 5077)
    assert sandbox.config.public_base_url == "http://127.0.0.1:5077" and sandbox.config.step_seconds == 0.25
    assert sandbox.faults.fail_at_step == 3 and sandbox.faults.webhooks.drop == ["logs"]


def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", "r8_" + "t" * 37)
    result = runner.invoke(
        app, ["sandbox", "--public-url", "https://tunnel.example/", "--data-dir", str(tmp_path)]
    )
    assert "r8_" + "t" * 37 in result.output and "https://tunnel.example " in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_non_loopback_host_prints_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda served_app, **options: served.update(options, app=served_app))
    result = runner.invoke(app, ["sandbox", "--host", host, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: the sandbox listens on {host}, so other machines can reach it: whoever has the token "
        "can read uploaded datasets and the webhook signing secret. Prefer --host 127.0.0.1.\n"
    )
    assert served["host"] == host and served["app"].state.sandbox.config.token != DEFAULT_SANDBOX_TOKEN


def test_the_public_test_token_is_never_used_on_a_non_loopback_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda served_app, **options: served.update(options, app=served_app))
    monkeypatch.setenv("SIMPLETUNER_SANDBOX_TOKEN", DEFAULT_SANDBOX_TOKEN)
    result = runner.invoke(app, ["sandbox", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    token = served["app"].state.sandbox.config.token
    assert token != DEFAULT_SANDBOX_TOKEN and token.startswith("r8_sandbox") and len(token) == 40
    assert f"token:    {token}" in result.stdout and DEFAULT_SANDBOX_TOKEN not in result.stdout
    assert result.stderr.endswith(
        "SIMPLETUNER_SANDBOX_TOKEN is the public test token, so this run uses a new random one.\n"
    )


def test_any_r8_token_is_refused_on_a_non_loopback_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("must not serve"))
    result = runner.invoke(
        app, ["sandbox", "--host", "0.0.0.0", "--any-r8-token", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "--any-r8-token accepts every well-formed token, which would open the sandbox on 0.0.0.0 to anyone: "
        "use it only with a loopback --host.\n"
    )


def test_bad_fault_flags_exit_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    result = runner.invoke(
        app, ["sandbox", "--error-status", "200", "--errors-next", "1", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "Invalid fault flags" in result.output


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """`simpletuner sandbox` as a user starts it: the installed command in a child process, its
    stdout a pipe. Yields the base URL, the token and the lines printed before serving."""
    token = "r8_" + "cli" * 12 + "x"
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("simpletuner")),
        "sandbox",
        "--port",
        str(port),
        "--step-seconds",
        "0.01",
        "--fail-at-step",
        "2",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    env = {**os.environ, "SIMPLETUNER_SANDBOX_TOKEN": token}
    env.pop("PYTHONUNBUFFERED", None)  # the lines must reach a pipe without it
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        printed: list[str] = []
        for line in child.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("token:") or len(printed) > 10:
                break
        base = f"http://127.0.0.1:{port}"

        def serving() -> bool:  # the banner comes before uvicorn binds the port
            try:
                httpx.get(f"{base}/status/api/v2/status.json", trust_env=False, timeout=5)
            except httpx.TransportError:
                assert child.poll() is None, "simpletuner sandbox exited"
                return False
            return True

        eventually_sync(serving, what="`simpletuner sandbox` serving")
        yield base, token, printed
    finally:
        child.terminate()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def test_the_command_serves_what_it_prints(served: tuple[str, str, list[str]]) -> None:
    base, token, printed = served
    assert printed[0] == "sandbox: no GPUs, no charges (offline Replicate emulator)"
    assert f"base URL: {base}    (API at {base}/v1)" in printed
    assert f"token:    {token}" in printed
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
        faults = http.get("/faults", headers={"Authorization": f"Bearer {token}"}).json()
        assert faults["fail_at_step"] == 2  # the flag, as the running sandbox sees it
        account = http.get("/v1/account", headers={"Authorization": f"Bearer {token}"})
        assert account.status_code == 200 and account.json()["username"] == "sandbox"
        default = http.get("/v1/account", headers={"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"})
        assert default.status_code == 401 and default.json() == UNAUTHENTICATED
        assert default.headers["content-type"] == "application/problem+json"
