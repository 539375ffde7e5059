"""Where a server bound to every interface (`0.0.0.0`, `::`) can be reached: this machine's addresses,
found with the standard library only (the kernel's interface table on Linux, the host name's addresses
elsewhere), and the sockets `simpletuner server` listens on."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
_IF_INET6 = Path("/proc/net/if_inet6")


def _ipv4_of(interface: str) -> str | None:
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:  # no IPv4 address, or not Linux
            return None
    return socket.inet_ntoa(answer[20:24])


def _ipv6_from_kernel() -> list[str]:
    try:
        lines = _IF_INET6.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if fields:
            with contextlib.suppress(ValueError):
                found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def _of_host_name(family: socket.AddressFamily) -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def _usable(address: str) -> bool:
    """Link-local IPv6 needs a zone id, which browsers refuse in URLs; unspecified is no address."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    return not (parsed.is_unspecified or (parsed.version == 6 and parsed.is_link_local))


def _ordered(addresses: Iterable[str]) -> list[str]:
    """Unique, loopback first (it always works from this machine), then the order found."""
    unique = list(dict.fromkeys(a for a in addresses if _usable(a)))
    return sorted(unique, key=lambda a: not ipaddress.ip_address(a).is_loopback)


def ipv4_addresses() -> list[str]:
    from_interfaces = [_ipv4_of(name) for _, name in socket.if_nameindex()]
    found = [a for a in from_interfaces if a] or _of_host_name(socket.AF_INET)
    return _ordered(["127.0.0.1", *found])


def ipv6_addresses() -> list[str]:
    found = _ipv6_from_kernel() or _of_host_name(socket.AF_INET6)
    return _ordered(["::1", *found])


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def reachable_hosts(host: str, *, ipv4_too: bool) -> list[str]:
    """The hosts to put in links for a server bound to `host`: every address of this machine for a
    wildcard, else the host itself."""
    if host in ("0.0.0.0", ""):
        return [url_host(a) for a in ipv4_addresses()]
    if host in ("::", "[::]"):
        both = [*ipv4_addresses(), *ipv6_addresses()] if ipv4_too else ipv6_addresses()
        return [url_host(a) for a in _ordered(both)]
    return [url_host(host.strip("[]"))]


def _bind(family: socket.AddressFamily, address: tuple[str, int], *, v6only: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listening_sockets(host: str, port: int, *, with_ipv4_loopback: bool) -> tuple[list[socket.socket], bool]:
    """Bound sockets for `host:port`, and whether `::` also listens on IPv4 (as most servers treat
    `::`; asyncio alone would make it IPv6-only): one dual-stack socket, or a second one on 0.0.0.0
    where the kernel has no dual-stack sockets. With `with_ipv4_loopback`, a host that
    does not cover 127.0.0.1 (`::1`, `127.0.0.2`, a LAN address) also gets a 127.0.0.1 listener: the
    in-process sandbox is called there. Raises OSError when an address cannot be bound."""
    name = None if host == "" else host.strip("[]")
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((info[0], (str(info[4][0]), port)) for info in infos))
    has_ipv4 = any(family == socket.AF_INET for family, _ in addresses)
    sockets: list[socket.socket] = []
    ipv4_too = False
    try:
        for family, address in addresses:
            wants_dual = family == socket.AF_INET6 and address[0] == "::" and not has_ipv4
            try:
                sockets.append(_bind(family, address, v6only=not wants_dual))
                ipv4_too = ipv4_too or wants_dual
            except OSError:
                if not wants_dual:
                    raise
                sockets.append(_bind(family, address, v6only=True))  # a kernel without dual-stack
                sockets.append(_bind(socket.AF_INET, ("0.0.0.0", port), v6only=True))
                ipv4_too = True
        covered = {str(s.getsockname()[0]) for s in sockets if s.family == socket.AF_INET}
        if with_ipv4_loopback and not ipv4_too and not covered & {"0.0.0.0", "127.0.0.1"}:
            sockets.append(_bind(socket.AF_INET, ("127.0.0.1", port), v6only=True))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, ipv4_too
