"""Who may use the management routes (`/api/cloud/...`) and the mounted sandbox (`/sandbox`).

A request *looks local* only when the TCP peer is loopback, there is exactly one Host header and it is a
clean `name[:port]` naming a loopback host, and no forwarding header is present: a tunnel, a reverse
proxy or a DNS-rebinding page fails at least one of these. Such a request is trusted without a token
only while local trust is on (`Settings.trusts_local_requests`: a forwarder on this machine that adds no
header cannot be told apart). Everyone else needs the admin token (Bearer header or the login cookie).
Mutations must be JSON and same-origin, which closes cross-site form posts and fetches even for the
local user's browser. The sandbox keeps its own token check on top of this gate."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from simpletuner_cloud.errors import CloudError, Unauthorized
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token, token_matches
from simpletuner_cloud.settings import Settings

# Headers a proxy, tunnel or CDN adds to say who the real client is. Compared after lower-casing and
# turning `_` into `-`: uvicorn passes `X_Forwarded_For` through as a separate name, and some proxies
# (nginx with `underscores_in_headers on`, Apache's CGI-style environments) carry it that way.
FORWARDING_HEADERS = frozenset(
    {
        "forwarded",
        "x-real-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-original-forwarded-for",
        "cf-connecting-ip",
        "true-client-ip",
        "fly-client-ip",
    }
)
FORWARDING_PREFIX = "x-forwarded-"  # -for, -host, -proto, -port, -server, ...
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A Host header as RFC 9110 allows it for us: a bracketed IPv6 literal or a DNS name / IPv4 address,
# then an optional port. Anything else (`localhost:80@evil.com`, `[::1]evil.com`) is not local.
_CLEAN_HOST = re.compile(
    r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9](?:[a-z0-9.-]*[a-z0-9.])?))(?::[0-9]{1,5})?"
)


def is_loopback_address(value: str | None) -> bool:
    if not value:
        return False
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def host_name(host_header: str) -> str | None:
    """`[::1]:8080` -> `::1`, `localhost:8080` -> `localhost`; None when the header is not a clean
    `name[:port]`."""
    match = _CLEAN_HOST.fullmatch(host_header.strip().lower())
    if match is None:
        return None
    return match["ipv6"] if match["ipv6"] is not None else match["name"].rstrip(".")


def is_loopback_host(host_header: str | None) -> bool:
    name = host_name(host_header) if host_header else None
    if not name:
        return False
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)


def has_forwarding_header(request: Request) -> bool:
    for raw_name, _ in request.headers.raw:
        name = raw_name.decode("latin-1").lower().replace("_", "-")
        if name in FORWARDING_HEADERS or name.startswith(FORWARDING_PREFIX):
            return True
    return False


def looks_local(request: Request) -> bool:
    """Loopback peer, one clean loopback Host header, no forwarding header (whatever the settings)."""
    peer = request.client.host if request.client else None
    if not is_loopback_address(peer):
        return False
    hosts = request.headers.getlist("host")
    if len(hosts) != 1 or not is_loopback_host(hosts[0]):
        return False
    return not has_forwarding_header(request)


def is_local_request(request: Request, settings: Settings) -> bool:
    return settings.trusts_local_requests and looks_local(request)


def shown_path(path: Path) -> str:
    """`~/.simpletuner/cloud/admin_token` under the home folder, the absolute path elsewhere."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def authentication_required(settings: Settings, message: str) -> Unauthorized:
    """The 401 every gate raises; the hint names where this installation keeps its admin token."""
    return Unauthorized(
        message,
        hint="Open the login link that `simpletuner server` printed, or send "
        f"`Authorization: Bearer <admin token>` (the token is in {shown_path(settings.admin_token_path)}).",
    )


def session_value(admin_token: str) -> str:
    """The cookie holds a value derived from the token, never the token itself."""
    return hmac.new(admin_token.encode(), b"simpletuner-session-v1", hashlib.sha256).hexdigest()


def presented_credentials_ok(request: Request, settings: Settings) -> bool:
    expected = read_admin_token(settings)
    if not expected:
        return False
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and token_matches(expected, value.strip()):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return token_matches(session_value(expected), cookie)


def check_same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CloudError(
            "Cross-site requests may not change settings or jobs.",
            code="origin_forbidden",
            hint="Use the Cloud tab served by this server, the CLI, or curl.",
        )
    if origin is None:
        return
    origin_host = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not origin_host or origin_host != (request.headers.get("host") or "").lower():
        raise CloudError(
            f"Requests from origin {origin!r} may not change settings or jobs.",
            code="origin_forbidden",
            hint="Use the Cloud tab served by this server, the CLI, or curl.",
        )


def check_json_body(request: Request) -> None:
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in request.headers
    )
    if content_type is None and not has_body:
        return
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise CloudError(
            "This endpoint takes a JSON body.",
            code="unsupported_media_type",
            hint='Send `Content-Type: application/json` with a JSON body, e.g. curl -H "Content-Type: '
            "application/json\" -d '{...}'.",
        )


async def require_management_access(request: Request) -> None:
    """FastAPI dependency applied to every management router."""
    settings: Settings = request.app.state.settings
    if not is_local_request(request, settings) and not presented_credentials_ok(request, settings):
        raise authentication_required(
            settings, "Authentication required: this request does not come from the local user."
        )
    if request.method in MUTATING_METHODS:
        check_same_origin(request)
        check_json_body(request)


def presents_sandbox_token(request: Request, settings: Settings) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in ("bearer", "token") and token_matches(settings.sandbox_token, value.strip())


def sandbox_access_ok(request: Request, settings: Settings) -> bool:
    if is_local_request(request, settings) or presented_credentials_ok(request, settings):
        return True
    # With local trust off, this server's own provider client still calls its sandbox over loopback:
    # it presents the sandbox token (a per-installation secret), or reads the status page (no secrets).
    if not looks_local(request):
        return False
    reads_status_page = request.method in ("GET", "HEAD") and mounted_path(request).startswith("/status/")
    return reads_status_page or presents_sandbox_token(request, settings)


def mounted_path(request: Request) -> str:
    """The path inside a mounted app (Starlette keeps the full path and puts the prefix in root_path)."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SandboxGate:
    """Wraps the mounted sandbox app: the management rule (local or admin), then the sandbox's own
    token check inside. Without it the emulator's files (uploaded datasets), its webhook signing
    secret and its reset would answer anyone who can reach the port."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if not sandbox_access_ok(request, self.settings):
                raise authentication_required(
                    self.settings, "Authentication required: the sandbox answers only the local user."
                )
            if request.method in MUTATING_METHODS:
                check_same_origin(request)
        await self.app(scope, receive, send)
