"""Suite-wide isolation: every test gets its own state root and a clean environment (no real token,
no proxy, no server URL leaking in from the developer's shell)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from simpletuner_cloud.security.redaction import forget_known_secrets

# pytest-xdist's workers start with COLUMNS (and LINES) set to the controller's terminal; rich reads
# them once, when the CLI's consoles are made, and would keep that width for good, so the CLI tests'
# own COLUMNS (their tables on one line) would not count. Without them the width is read when printing,
# as in a run without workers.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

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


@pytest.fixture(autouse=True)
def _known_secrets() -> Iterator[None]:
    """The secrets one test saved are not masked in the next (they live in a process-wide set)."""
    yield
    forget_known_secrets()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# No test may reach past this machine (the workplace forbids it, and a fuzzed URL setting would try):
# in this process, name lookups and connections to anything but loopback fail at once, as an
# offline machine would answer. Servers a test starts as child processes are given loopback URLs.
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    name = name.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or address.is_unspecified or bool(mapped and mapped.is_loopback)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Any:
    real_getaddrinfo, real_connect, real_connect_ex = (
        socket.getaddrinfo,
        socket.socket.connect,
        socket.socket.connect_ex,
    )

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"test network guard: no lookups of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded(real: Any) -> Any:
        def connect(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                raise ConnectionRefusedError(f"test network guard: no connections to {address[0]!r}")
            return real(self, address)

        return connect

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = guarded(real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(real_connect_ex)  # type: ignore[method-assign]
    yield
    socket.getaddrinfo = real_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
