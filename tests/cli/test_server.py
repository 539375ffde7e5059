"""`simpletuner server` as a user runs it: a real process on a free port."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.cli.addresses import ipv4_addresses, ipv6_addresses
from simpletuner_cloud.cli.server import uvicorn_config
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port


def _start(home: Path, *args: str, **env_vars: str) -> tuple[subprocess.Popen[str], int]:
    """The server with its output piped (not a terminal): the links are asked for explicitly."""
    port = free_port()
    env = {**os.environ, "SIMPLETUNER_HOME": str(home), "SIMPLETUNER_PRINT_LOGIN_LINK": "1", **env_vars}
    command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(port), *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port


def _wait_healthy(process: subprocess.Popen[str], port: int, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 30  # a generous bound for a loaded CI machine, not a speed assertion
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise AssertionError("server never answered /healthz")


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=20)
    return output


def test_server_starts_answers_and_prints_login_link(tmp_path: Path) -> None:
    process, port = _start(tmp_path / "home")
    try:
        _wait_healthy(process, port)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        token = (tmp_path / "home" / "cloud" / "admin_token").read_text().strip()
        assert (tmp_path / "home" / "cloud" / "jobs.db").exists()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/login?token={token}" in output
    assert f"web UI: http://127.0.0.1:{port}/cloud" in output
    # uvicorn re-raises SIGTERM after a graceful shutdown; what matters is that the lifespan finished.
    assert "Application shutdown complete" in output


def test_output_that_is_not_a_terminal_never_holds_the_admin_token(tmp_path: Path) -> None:
    """Under systemd, docker or `> server.log` the output is kept: the link says where the token is."""
    process, port = _start(tmp_path / "home", SIMPLETUNER_PRINT_LOGIN_LINK="")
    try:
        _wait_healthy(process, port)
        token = (tmp_path / "home" / "cloud" / "admin_token").read_text().strip()
    finally:
        output = _stop(process)
    assert token not in output
    assert (
        f"login link (sets a session cookie for remote browsers): http://127.0.0.1:{port}/login?token=<the "
        f"token in {tmp_path / 'home' / 'cloud' / 'admin_token'}> (not printed: this output is not a "
        "terminal, and may be kept in a log)"
    ) in output


def test_a_terminal_gets_the_login_link(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    port = free_port()
    env = {**os.environ, "SIMPLETUNER_HOME": str(tmp_path / "home")}
    env.pop("SIMPLETUNER_PRINT_LOGIN_LINK", None)
    command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed assertion
        while b"/login?token=st_" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                seen += os.read(leader, 65536)
    finally:
        process.terminate()
        process.wait(timeout=20)
        os.close(leader)
    token = (tmp_path / "home" / "cloud" / "admin_token").read_text().strip()
    assert f"http://127.0.0.1:{port}/login?token={token}".encode() in seen


def test_bound_to_every_ipv4_interface_it_prints_a_link_per_address_and_turns_local_trust_off(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    process, port = _start(home, "--host", "0.0.0.0")
    try:
        _wait_healthy(process, port)
        token = (home / "cloud" / "admin_token").read_text().strip()
        refused = httpx.get(f"http://127.0.0.1:{port}/api/cloud/providers")
        allowed = httpx.get(
            f"http://127.0.0.1:{port}/api/cloud/providers", headers={"Authorization": f"Bearer {token}"}
        )
    finally:
        output = _stop(process)
    assert refused.status_code == 401 and allowed.status_code == 200
    assert "local trust: off, because the server listens on 0.0.0.0, not only on loopback" in output
    assert "SIMPLETUNER_TRUST_LOCAL=1 turns it back on." in output
    assert (
        "login links (set a session cookie for remote browsers), one per address of this machine:" in output
    )
    addresses = ipv4_addresses()
    assert addresses[0] == "127.0.0.1"
    for address in addresses:
        assert f"    http://{address}:{port}/login?token={token}" in output
    assert "0.0.0.0:" not in output.split("Application startup")[0]  # no link names the wildcard


def test_trust_local_keeps_local_trust_on_a_public_bind_and_says_so(tmp_path: Path) -> None:
    process, port = _start(tmp_path / "home", "--host", "0.0.0.0", SIMPLETUNER_TRUST_LOCAL="1")
    try:
        _wait_healthy(process, port)
        assert httpx.get(f"http://127.0.0.1:{port}/api/cloud/providers").status_code == 200
    finally:
        output = _stop(process)
    assert "local trust: on (SIMPLETUNER_TRUST_LOCAL=1): requests from this machine need no token" in output


def test_bound_to_ipv6_any_the_sandbox_still_answers_and_links_name_real_addresses(tmp_path: Path) -> None:
    """`--host ::` listens on IPv6 and IPv4 (one dual-stack socket), so the provider's calls to its
    in-process sandbox at 127.0.0.1 arrive; before, every one failed with a 502."""
    home = tmp_path / "home"
    process, port = _start(home, "--host", "::", "--sandbox")
    try:
        _wait_healthy(process, port, host="[::1]")
        admin = {"Authorization": f"Bearer {(home / 'cloud' / 'admin_token').read_text().strip()}"}
        validate = httpx.get(
            f"http://[::1]:{port}/api/cloud/providers/replicate/validate", headers=admin, timeout=30
        )
        over_ipv4 = httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        output = _stop(process)
    assert validate.status_code == 200, validate.text
    assert validate.json()["valid"] is True and validate.json()["account"]["username"] == "sandbox"
    assert over_ipv4.status_code == 200
    assert f"    http://[::1]:{port}/login?token=" in output
    assert f"    http://127.0.0.1:{port}/login?token=" in output
    for address in ipv6_addresses():
        assert f"    http://[{address}]:{port}/login?token=" in output
    assert f"token in {home}/cloud/sandbox_token" in output


def test_bound_to_ipv6_loopback_the_sandbox_gets_a_loopback_listener_beside_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process, port = _start(home, "--host", "::1", "--sandbox")
    try:
        _wait_healthy(process, port, host="[::1]")
        validate = httpx.get(f"http://[::1]:{port}/api/cloud/providers/replicate/validate", timeout=30)
    finally:
        output = _stop(process)
    assert validate.status_code == 200 and validate.json()["valid"] is True, validate.text
    assert (
        f"login link (sets a session cookie for remote browsers): http://[::1]:{port}/login?token=" in output
    )
    assert "local trust: on: requests from this machine need no token" in output


def test_a_port_in_use_is_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SIMPLETUNER_HOME": str(tmp_path / "home")}
        command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(port)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1 port {port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_keep_alive_and_concurrency_limit_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    app = FastAPI()
    defaults = uvicorn_config(app, load_settings())
    assert (defaults.timeout_keep_alive, defaults.limit_concurrency) == (5, 256)
    monkeypatch.setenv("SIMPLETUNER_KEEP_ALIVE_SECONDS", "30")
    monkeypatch.setenv("SIMPLETUNER_MAX_CONCURRENCY", "40")
    configured = uvicorn_config(app, load_settings())
    assert (configured.timeout_keep_alive, configured.limit_concurrency) == (30, 40)
    assert (configured.proxy_headers, configured.server_header, configured.access_log) == (
        False,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KEEP_ALIVE_SECONDS", "0", "Input should be greater than or equal to 1"),
        ("MAX_CONCURRENCY", "-1", "Input should be greater than or equal to 1"),
        ("MAX_CONCURRENCY", "many", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_nonsense_limits_are_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    from typer.testing import CliRunner

    from simpletuner_cloud.cli import app

    def must_not_serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr("uvicorn.run", must_not_serve)
    monkeypatch.setattr("uvicorn.Server.run", must_not_serve)
    monkeypatch.setenv(f"SIMPLETUNER_{name}", value)
    result = CliRunner().invoke(app, ["server"])
    assert result.exit_code == 2
    assert result.output == f"Invalid setting SIMPLETUNER_{name}: {message}.\n"
