"""Suite-wide isolation: every test gets its own state root and a clean environment (no real token,
no proxy, no server URL leaking in from the developer's shell)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The property tests check behaviour, not speed: Hypothesis's 200 ms per-example deadline and its
# too-slow health check would turn a stall on a loaded CI machine into a failure.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

_LEAKY_VARS = (
    "REPLICATE_API_TOKEN",
    "REPLICATE_BASE_URL",
    "HF_TOKEN",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SIMPLETUNER_URL",
    "SIMPLETUNER_DATABASE_URL",
    "SIMPLETUNER_REQUIRE_AUTH",
    "SIMPLETUNER_CONFIGS_DIR",
    "SIMPLETUNER_SANDBOX",
    "SIMPLETUNER_HOST",
    "SIMPLETUNER_PORT",
)


@pytest.fixture(autouse=True)
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in _LEAKY_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "state"
    monkeypatch.setenv("SIMPLETUNER_HOME", str(home))
    monkeypatch.setenv("SIMPLETUNER_WORKER_INTERVAL", "0.05")
    monkeypatch.setenv("TZ", "UTC")  # budget periods follow the machine's zone unless a test names one
    return home


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
