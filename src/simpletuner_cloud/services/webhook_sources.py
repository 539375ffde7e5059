"""Who sent a webhook: the socket peer, unless that peer is a trusted proxy; then the right-most hop of
`X-Forwarded-For` that is not itself a trusted proxy (or `X-Real-IP`). A header from any other peer is
ignored, so a spoofed `X-Forwarded-For` changes nothing. Pure functions over the provider settings'
already normalised address lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Offered as a preset in the docs and the UI: the seed's webhook source ranges (Google Cloud us-west1).
# Replicate does not promise them (docs/replicate-api.md section 4), so an allowlist is a filter on
# top of the signature, never instead of it.
SEED_WEBHOOK_RANGES = ("34.82.0.0/16", "35.185.0.0/16")


def parse_address(value: str | None) -> IpAddress | None:
    """An address as a proxy writes it (`1.2.3.4`, `[2001:db8::1]`, `1.2.3.4:5678`), IPv4-mapped IPv6
    folded to IPv4; None when it is not an address."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def networks(values: Iterable[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _inside(address: IpAddress, ranges: Sequence[IpNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in ranges)


def forwarded_hops(values: Iterable[str]) -> list[str]:
    """Every hop of every `X-Forwarded-For` header, in order (several headers are one list)."""
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]


def client_address(
    peer: str | None,
    forwarded_for: Sequence[str],
    real_ip: str | None,
    trusted_proxies: Sequence[IpNetwork],
) -> str | None:
    """The address the allowlist judges, as text; None when it cannot be told (an unparsable hop)."""
    peer_address = parse_address(peer)
    if peer_address is None:
        return None
    if not _inside(peer_address, trusted_proxies):
        return str(peer_address)
    hops = forwarded_hops(forwarded_for)
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return None  # the first untrusted hop is garbage: nobody can be allowed by it
        if not _inside(address, trusted_proxies):
            return str(address)
    if hops:  # every hop is a trusted proxy: the left-most one is as far as anyone can see
        leftmost = parse_address(hops[0])
        return str(leftmost) if leftmost is not None else None
    if real_ip:
        address = parse_address(real_ip)
        return str(address) if address is not None else None
    return str(peer_address)


def is_allowed(address: str | None, allowlist: Sequence[IpNetwork]) -> bool:
    """An empty allowlist allows everyone; otherwise the address must be inside one of its ranges."""
    if not allowlist:
        return True
    parsed = parse_address(address)
    return parsed is not None and _inside(parsed, allowlist)
