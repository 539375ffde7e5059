"""Who may use the management routes (`/api/cloud/...`).

A request is *local* only when the TCP peer is loopback, the Host header names a loopback host and no
forwarding header is present: a tunnel, a reverse proxy or a DNS-rebinding page fails at least one of
these. Everyone else needs the admin token (Bearer header or the login cookie). Mutations must be JSON
and same-origin, which closes cross-site form posts and fetches even for the local user's browser."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

from fastapi import Request

from simpletuner_cloud.errors import CloudError, Unauthorized
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token, token_matches
from simpletuner_cloud.settings import Settings

FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
)
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback_address(value: str | None) -> bool:
    if not value:
        return False
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def host_name(host_header: str) -> str:
    """`[::1]:8080` -> `::1`, `localhost:8080` -> `localhost`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_host(host_header: str | None) -> bool:
    if not host_header:
        return False
    name = host_name(host_header)
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)


def is_local_request(request: Request, settings: Settings) -> bool:
    if settings.require_auth:
        return False
    peer = request.client.host if request.client else None
    if not is_loopback_address(peer):
        return False
    if not is_loopback_host(request.headers.get("host")):
        return False
    return not any(name in request.headers for name in FORWARDING_HEADERS)


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
        raise Unauthorized("Authentication required: this request does not come from the local user.")
    if request.method in MUTATING_METHODS:
        check_same_origin(request)
        check_json_body(request)
