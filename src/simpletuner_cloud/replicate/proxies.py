"""Outbound proxies: which proxy (if any) carries a request to a given host. The `proxy_url` setting
applies to every scheme; otherwise HTTPS_PROXY / HTTP_PROXY / ALL_PROXY by scheme; NO_PROXY lists
hosts reached directly either way. The environment is passed in, never read here."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx


@dataclass(frozen=True)
class ProxyConfig:
    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = field(default_factory=tuple)

    @property
    def enabled(self) -> bool:
        return bool(self.http or self.https)

    def for_url(self, url: httpx.URL) -> str | None:
        if bypasses(url.host, url.port, self.no_proxy):
            return None
        return self.https if url.scheme == "https" else self.http


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # curl's convention: the lowercase spelling wins when both exist.
    value = environ.get(name.lower()) or environ.get(name.upper())
    return (value.strip() or None) if value else None


def proxy_config(proxy_url: str | None, environ: Mapping[str, str]) -> ProxyConfig:
    no_proxy = tuple(p.strip().lower() for p in (_env(environ, "NO_PROXY") or "").split(",") if p.strip())
    if proxy_url:
        return ProxyConfig(http=proxy_url, https=proxy_url, no_proxy=no_proxy)
    fallback = _env(environ, "ALL_PROXY")
    return ProxyConfig(
        http=_env(environ, "HTTP_PROXY") or fallback,
        https=_env(environ, "HTTPS_PROXY") or fallback,
        no_proxy=no_proxy,
    )


def bypasses(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """NO_PROXY entries: `*`, a host or domain suffix (`example.com`, `.example.com`), an IP, a
    CIDR, each optionally with `:port`."""
    host = host.lower().strip("[]").rstrip(".")
    for entry in no_proxy:
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _matches(host, name):
            return True
    return False


def _port_digits(text: str) -> bool:
    return len(text) <= 5 and text.isascii() and text.isdigit()  # isdigit alone takes `²`


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and _port_digits(rest[1:]) else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if _port_digits(port) else None
    return entry, None


def _matches(host: str, entry: str) -> bool:
    entry = entry.lstrip("*").lstrip(".").rstrip(".")
    if not entry:
        return False
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return host == entry or host.endswith("." + entry)
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def _netloc(parts: SplitResult, password: str | None) -> str:
    """Rebuild `user[:password]@host[:port]` from raw (still percent-encoded) parts."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    if not at:
        return hostport
    return f"{user}:{password}@{hostport}" if password is not None else f"{user}@{hostport}"


def mask_proxy_url(url: str | None) -> str | None:
    """Proxy credentials are secrets: `http://user:pass@host` shows as `http://user:***@host`."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=_netloc(parts, "***")))


def split_proxy_password(url: str | None) -> tuple[str | None, str | None]:
    """`http://bob:pw@proxy:3128` -> (`http://bob@proxy:3128`, `pw`): the password goes to the secret
    store, the rest may be stored and shown. The password stays percent-encoded as written."""
    if not url:
        return url, None
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" not in userinfo:
        return url, None
    return urlunsplit(parts._replace(netloc=_netloc(parts, None))), userinfo.partition(":")[2]


def with_proxy_password(url: str, password: str) -> str:
    """The inverse of `split_proxy_password` (a URL without a user name gets none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=_netloc(parts, password)))


class InvalidProxy(httpx.TransportError):
    """The proxy a request should go through is not a usable URL (say, a line break in HTTPS_PROXY).
    A transport error, so every caller answers it like an unreachable network, never a 500; not worth
    retrying, and no evidence that Replicate is down."""


class ProxyRoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request through the proxy its URL calls for, or directly."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self._direct = httpx.AsyncHTTPTransport()
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}

    def _for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        proxy = self.config.for_url(url)
        if proxy is None:
            return self._direct
        if proxy not in self._proxied:
            try:
                self._proxied[proxy] = httpx.AsyncHTTPTransport(proxy=proxy)
            except (httpx.InvalidURL, ValueError):  # the message never quotes the URL (a password)
                raise InvalidProxy(
                    f"the proxy for {url.scheme}:// requests (the proxy_url setting, or HTTPS_PROXY, "
                    "HTTP_PROXY, ALL_PROXY) is not a valid proxy URL"
                ) from None
        return self._proxied[proxy]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            transport = self._for(request.url)
        except InvalidProxy as exc:
            exc.request = request
            raise
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()
