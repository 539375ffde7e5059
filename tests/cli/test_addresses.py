"""The sockets `simpletuner server` binds and the addresses its links name."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from simpletuner_cloud.cli import addresses
from simpletuner_cloud.cli.addresses import listening_sockets, reachable_hosts
from tests.support.live_server import free_port


@contextmanager
def bound(host: str, *, with_ipv4_loopback: bool) -> Iterator[tuple[list[str], bool]]:
    sockets, ipv4_too = listening_sockets(host, free_port(), with_ipv4_loopback=with_ipv4_loopback)
    try:
        yield sorted(str(s.getsockname()[0]) for s in sockets), ipv4_too
    finally:
        for sock in sockets:
            sock.close()


def connects(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((address, port)) == 0


def test_ipv6_any_is_one_dual_stack_socket_that_ipv4_reaches() -> None:
    port = free_port()
    sockets, ipv4_too = listening_sockets("::", port, with_ipv4_loopback=True)
    try:
        for sock in sockets:
            sock.listen()
        assert ipv4_too and [str(s.getsockname()[0]) for s in sockets] == ["::"]
        assert connects("127.0.0.1", port) and connects("::1", port)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [("::1", ["127.0.0.1", "::1"]), ("127.0.0.2", ["127.0.0.1", "127.0.0.2"]), ("127.0.0.1", ["127.0.0.1"])],
)
def test_the_sandbox_gets_a_loopback_listener_when_the_host_does_not_cover_it(
    host: str, expected: list[str]
) -> None:
    with bound(host, with_ipv4_loopback=True) as (names, _):
        assert names == expected
    with bound(host, with_ipv4_loopback=False) as (names, _):
        assert names == [host]


def test_ipv4_any_covers_loopback_by_itself() -> None:
    with bound("0.0.0.0", with_ipv4_loopback=True) as (names, ipv4_too):
        assert names == ["0.0.0.0"] and not ipv4_too


def test_links_for_a_wildcard_name_every_address_loopback_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addresses, "ipv4_addresses", lambda: ["127.0.0.1", "192.0.2.2", "10.1.2.3"])
    monkeypatch.setattr(addresses, "ipv6_addresses", lambda: ["::1", "fd00::2"])
    assert reachable_hosts("0.0.0.0", ipv4_too=False) == ["127.0.0.1", "192.0.2.2", "10.1.2.3"]
    assert reachable_hosts("::", ipv4_too=True) == [
        "127.0.0.1",
        "[::1]",
        "192.0.2.2",
        "10.1.2.3",
        "[fd00::2]",
    ]
    assert reachable_hosts("::", ipv4_too=False) == ["[::1]", "[fd00::2]"]
    assert reachable_hosts("192.0.2.2", ipv4_too=False) == ["192.0.2.2"]
    assert reachable_hosts("::1", ipv4_too=False) == ["[::1]"]


def test_this_machines_addresses_are_real_and_usable_in_a_url() -> None:
    v4, v6 = addresses.ipv4_addresses(), addresses.ipv6_addresses()
    assert v4[0] == "127.0.0.1" and v6[0] == "::1"
    for address in v4 + v6:
        parsed = ipaddress.ip_address(address)
        assert not parsed.is_unspecified and not parsed.is_link_local, address  # fe80:: needs a zone id
    assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
