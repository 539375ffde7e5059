"""`simpletuner server` as a user runs it: a real process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import free_port


def _start(home: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "SIMPLETUNER_HOME": str(home)}
    command = [sys.executable, "-m", "simpletuner_cloud", "server", "--port", str(port), *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port


def _wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30  # a generous bound for a loaded CI machine, not a speed assertion
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise AssertionError("server never answered /healthz")


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
