"""The webhook self-test: send one correctly signed test event, padded to just over 10 MiB (the size
of a real delivery with long logs), through the public URL, the way Replicate would, and say what
went wrong on the way: DNS, TLS, a redirect (Replicate follows none), a non-2xx answer, a proxy in
front whose body limit is under 10 MiB, or another server answering. It then checks that *this*
server's receiver recorded that very event."""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from simpletuner_cloud import __version__
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.webhooks import signed_headers
from simpletuner_cloud.services.provider_settings import load_replicate_settings, webhook_url
from simpletuner_cloud.services.webhook_receiver import SELF_TEST_MARK, WebhookReceiver
from simpletuner_cloud.store.webhook_deliveries import find_presented

MIB = 1024 * 1024
TEST_BODY_BYTES = 10 * MIB + 4096  # just over Replicate's documented worst case the receiver must take
TIMEOUT_SECONDS = 30.0
Problem = Literal[
    "invalid_url", "dns", "tls", "connect", "timeout", "redirect", "proxy_body_limit", "proxy_refused",
    "http_status", "receiver_refused", "not_this_server",
]  # fmt: skip


class WebhookTestResult(BaseModel):
    ok: bool
    url: str
    status: int | None
    latency_ms: float | None
    body_bytes: int
    problem: Problem | None
    message: str
    hint: str
    client_ip: str | None  # the address the receiver saw (what the allowlist judges)
    delivery_id: int | None


def self_test_event(token: str) -> bytes:
    """A prediction-shaped body the receiver recognises as a test (it changes no job)."""
    body: dict[str, Any] = {
        "id": f"selftest_{token}",
        "status": "succeeded",
        SELF_TEST_MARK: True,
        "output": None,
        "logs": "simpletuner webhook self-test ",
    }
    padding = TEST_BODY_BYTES - len(json.dumps(body).encode())
    body["logs"] += "." * max(0, padding)
    return json.dumps(body).encode()


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _network_problem(exc: httpx.HTTPError, url: str) -> tuple[Problem, str, str]:
    host = httpx.URL(url).host
    if isinstance(exc, httpx.TimeoutException):
        return (
            "timeout",
            f"Nothing answered at {url} within {TIMEOUT_SECONDS:g} s.",
            "Check that the tunnel or proxy is running and forwards to this server's port.",
        )
    if _caused_by(exc, socket.gaierror):
        return (
            "dns",
            f"The host name {host} does not resolve.",
            "Check the spelling of `public_url`; a tunnel's URL changes each time the tunnel restarts "
            "(ngrok, cloudflared quick tunnels).",
        )
    if _caused_by(exc, ssl.SSLError):
        return (
            "tls",
            f"The TLS handshake with {host} failed ({exc}).",
            "Replicate needs a publicly trusted certificate for the host name in `public_url` "
            "(a self-signed one is refused); ngrok and cloudflared provide one.",
        )
    return (
        "connect",
        f"Could not connect to {url} ({exc}).",
        "Check that the tunnel or reverse proxy is running and reachable from the internet.",
    )


def _our_error(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) and "code" in error else None


def _http_problem(response: httpx.Response, url: str) -> tuple[Problem, str, str]:
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location", "(no Location)")
        return (
            "redirect",
            f"{url} answered {status}, a redirect to {location}.",
            "Replicate follows no redirects, so every delivery would be lost: set `public_url` to the "
            "final address (often https instead of http, or without a trailing path).",
        )
    error = _our_error(response)
    if status == 413 and (error is None or error.get("code") != "payload_too_large"):
        return (
            "proxy_body_limit",
            f"Something in front of this server refused a {TEST_BODY_BYTES:,}-byte body ({status}).",
            "Replicate sends whole predictions with their logs (10 MiB and more): raise the proxy's "
            "limit, e.g. nginx `client_max_body_size 16m;` (see docs/deploy.md).",
        )
    if error is not None and error.get("code") == "ip_not_allowed":
        return (
            "receiver_refused",
            "The event reached the receiver and its signature was accepted, but the IP allowlist refused "
            f"it: {error.get('message')}",
            "Expected when `webhook_allowed_ips` lists only Replicate's ranges (the test comes from this "
            "machine); otherwise add the proxy to `trusted_proxies`.",
        )
    if error is not None:
        return ("receiver_refused", str(error.get("message")), str(error.get("hint") or ""))
    if status == 403:  # not our JSON: the proxy's own allowlist (the nginx and Traefik recipes)
        return (
            "proxy_refused",
            f"Something in front of this server refused the test event ({url} answered 403, not in this "
            "server's words): the receiver was not reached.",
            "Expected when the proxy lets only Replicate's ranges reach the webhook path (the nginx and "
            "Traefik recipes in docs/deploy.md do): the test comes from this machine. To test the whole "
            "path, allow this machine's public address there for a moment, or leave the allowlist to the "
            "server (`webhook_allowed_ips`) as the Caddy recipe does.",
        )
    return (
        "http_status",
        f"{url} answered {status} instead of 2xx.",
        "A tunnel or proxy answered for this server: check where it forwards (port 8080 by default).",
    )


async def run_self_test(receiver: WebhookReceiver) -> WebhookTestResult:
    settings = receiver.settings
    async with receiver.database.session() as session:
        replicate = await load_replicate_settings(session, settings)
    url = webhook_url(settings, replicate)
    if url is None:
        raise CloudError(
            "No public URL is set, so Replicate cannot deliver webhooks to this server.",
            code="public_url_missing",
            hint="Start a tunnel (`ngrok http 8080` or `cloudflared tunnel --url http://localhost:8080`) "
            "and set its https URL as `public_url` (PUT /api/cloud/providers/replicate).",
        )
    token = secrets.token_hex(8)
    try:  # a value saved before PUT checked this as strictly: an answer, never a 500
        target = httpx.Request("POST", url).url  # the host is checked (IDNA, IPv4) only here
    except (httpx.InvalidURL, ValueError) as exc:
        return WebhookTestResult(
            ok=False, url=url, status=None, latency_ms=None, body_bytes=0, problem="invalid_url",
            message=f"The webhook URL {url} cannot be used: {str(exc)[:120] or type(exc).__name__}.",
            hint="Save `public_url` again (PUT /api/cloud/providers/replicate) with the tunnel's or "
            "proxy's https URL, e.g. https://abc.ngrok-free.app.",
            client_ip=None, delivery_id=None,
        )  # fmt: skip
    msg_id = f"msg_selftest_{token}"
    body = self_test_event(token)
    headers = {
        **signed_headers(await receiver.signing_secret(replicate), msg_id, int(time.time()), body),
        "content-type": "application/json",
        "user-agent": f"simpletuner-cloud-selftest/{__version__}",
    }
    result: dict[str, Any] = {
        "url": url, "status": None, "latency_ms": None, "body_bytes": len(body), "client_ip": None,
        "delivery_id": None,
    }  # fmt: skip
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
        ) as http:
            response = await http.post(target, content=body, headers=headers)
    except httpx.HTTPError as exc:
        problem, message, hint = _network_problem(exc, url)
        return WebhookTestResult(ok=False, problem=problem, message=message, hint=hint, **result)
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    result["status"] = response.status_code
    async with receiver.database.session() as session:
        recorded = await find_presented(session, msg_id)
    if recorded is not None:
        result["client_ip"], result["delivery_id"] = recorded.client_ip, recorded.id
    if not response.is_success:
        problem, message, hint = _http_problem(response, url)
        return WebhookTestResult(ok=False, problem=problem, message=message, hint=hint, **result)
    if recorded is None:
        return WebhookTestResult(
            ok=False,
            problem="not_this_server",
            message=f"{url} answered {response.status_code}, but this server's receiver did not get "
            "the event.",
            hint="The URL reaches another server (an old tunnel, another machine): point it at this one.",
            **result,
        )
    return WebhookTestResult(
        ok=True,
        problem=None,
        message=f"A signed {len(body):,}-byte test event reached this server's receiver through {url} "
        f"in {result['latency_ms']} ms.",
        hint="Webhooks can reach this server. Replicate's own deliveries come from its addresses, "
        "which the allowlist (if any) must let in.",
        **result,
    )
