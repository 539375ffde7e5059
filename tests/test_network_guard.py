"""The suite's network guard (tests/conftest.py): nothing in the test process reaches past loopback."""

from __future__ import annotations

import socket

import httpx
import pytest


def test_lookups_and_connections_past_loopback_fail_at_once() -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo("example.com", 80)
    with pytest.raises(OSError):
        socket.create_connection(("10.1.2.3", 80), timeout=1)
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://example.com/")


def test_loopback_still_works() -> None:
    assert socket.getaddrinfo("localhost", 80)
    assert socket.getaddrinfo("127.0.0.1", 80) and socket.getaddrinfo("::1", 80)
