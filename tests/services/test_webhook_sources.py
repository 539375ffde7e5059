"""Who sent a webhook: the peer, or behind a trusted proxy the right-most untrusted forwarded hop."""

from __future__ import annotations

import pytest

from simpletuner_cloud.services.webhook_sources import client_address, is_allowed, networks, parse_address

PROXIES = networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "real_ip", "expected"),
    [
        ("203.0.113.7", ["34.82.1.2"], "34.82.1.2", "203.0.113.7"),  # untrusted peer: headers ignored
        ("10.0.0.1", [], None, "10.0.0.1"),  # a trusted proxy that says nothing
        ("10.0.0.1", [], "34.82.1.2", "34.82.1.2"),
        ("10.0.0.1", ["1.1.1.1, 34.82.1.2"], "9.9.9.9", "34.82.1.2"),  # X-Forwarded-For wins
        ("10.0.0.1", ["1.1.1.1", "34.82.1.2, 10.2.2.2"], None, "34.82.1.2"),  # several headers, one list
        ("10.0.0.1", ["10.3.3.3, 10.2.2.2"], None, "10.3.3.3"),  # all trusted: the left-most
        ("10.0.0.1", ["34.82.1.2, garbage"], None, None),  # the first untrusted hop is unreadable
        ("fd00::1", ["[2001:db8::5]:4711"], None, "2001:db8::5"),
        ("::ffff:10.0.0.9", ["34.82.1.2:443"], None, "34.82.1.2"),  # a dual-stack peer, a hop with a port
        ("not-an-ip", [], None, None),
    ],
)
def test_client_address(peer: str, forwarded: list[str], real_ip: str | None, expected: str | None) -> None:
    assert client_address(peer, forwarded, real_ip, PROXIES) == expected


def test_allowlist() -> None:
    ranges = networks(["34.82.0.0/16", "2001:db8::/32"])
    assert is_allowed("34.82.200.1", ranges) and is_allowed("2001:db8::1", ranges)
    assert not is_allowed("35.185.0.1", ranges) and not is_allowed(None, ranges)
    assert is_allowed("198.51.100.1", []) and is_allowed(None, [])  # no allowlist: everyone


def test_parse_address() -> None:
    assert str(parse_address(" ::ffff:127.0.0.1 ")) == "127.0.0.1"
    assert parse_address("[::1") is not None and parse_address("") is None
