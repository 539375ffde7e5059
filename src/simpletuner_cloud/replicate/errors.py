"""Replicate's failures as `CloudError`s, in one table: 401 is a bad token, 429 is a wait, 5xx and
network trouble mean Replicate is unavailable. Each error keeps its evidence (status, problem+json
`detail`, request ids) and never the token: messages are built from parsed fields, then redacted."""

from __future__ import annotations

import json
from typing import Any

import httpx

from simpletuner_cloud.errors import CloudError, ProviderUnavailable
from simpletuner_cloud.security.redaction import redact

TOKEN_MISSING_MESSAGE = "REPLICATE_API_TOKEN not set"  # noqa: S105 (a message, not a secret)
TOKEN_MISSING_HINT = (
    'Export it: export REPLICATE_API_TOKEN="r8_..." and restart simpletuner server '  # noqa: S105
    "(or save one with PUT /api/cloud/providers/replicate/token)."
)
TOKEN_INVALID_MESSAGE = "Invalid token"  # noqa: S105
TOKEN_INVALID_HINT = (
    "Tokens start with r8_. Check for stray spaces or newlines, or create a new token at "  # noqa: S105
    "https://replicate.com/account/api-tokens."
)
MODEL_NOT_FOUND_HINT = (
    "Check `model` and `version` in the provider settings (Cloud -> Settings, or PUT "
    "/api/cloud/providers/replicate; null uses the hardware profile's trainer): the model must exist and "
    "this token must see it (a private model needs its owner's token)."
)
GONE_HINT = (
    "Replicate has nothing there any more: it keeps an API prediction's data and uploaded files for a "
    "limited time. The details name the request."
)
PROVIDER_ERROR_HINT = (
    "Replicate's answer is in `details` (status, detail, request id). Retry; if it persists, check "
    "https://replicate.statuspage.io/ and report it with the request id."
)
# Replicate does not document its request-id header; these are the candidates seen in the wild.
RESPONSE_ID_HEADERS = ("x-request-id", "replicate-request-id", "cf-ray")
CLIENT_REQUEST_ID = "X-Request-Id"


def token_missing() -> CloudError:
    return CloudError(TOKEN_MISSING_MESSAGE, code="token_missing", hint=TOKEN_MISSING_HINT)


def token_invalid(details: dict[str, Any] | None = None) -> CloudError:
    return CloudError(TOKEN_INVALID_MESSAGE, code="token_invalid", hint=TOKEN_INVALID_HINT, details=details)


def parse_problem(content: bytes) -> dict[str, Any]:
    """RFC 7807 fields from any body; HTML from an edge proxy or an empty body gives {}."""
    try:
        data = json.loads(content) if content else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after_seconds(response: httpx.Response, problem: dict[str, Any]) -> float | None:
    """`Retry-After` in integer seconds (what Replicate's clients send), else the body's `retry_after`."""
    header = response.headers.get("retry-after", "").strip()
    for candidate in (header, problem.get("retry_after")):
        try:
            value = float(candidate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def evidence(request: httpx.Request, response: httpx.Response | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "method": request.method,
        "path": request.url.path,
        "client_request_id": request.headers.get(CLIENT_REQUEST_ID),
    }
    if response is not None:
        found["provider_status"] = response.status_code
        for name in RESPONSE_ID_HEADERS:
            if name in response.headers:
                found["provider_request_id"] = response.headers[name]
                break
    return found


def error_from_response(request: httpx.Request, response: httpx.Response) -> CloudError:
    """Map a read (`aread` done) error response. The status line decides, never the body."""
    problem = parse_problem(response.content)
    details = evidence(request, response)
    detail = problem.get("detail")
    if isinstance(detail, str):
        details["detail"] = redact(detail)
    if isinstance(problem.get("title"), str):
        details["title"] = redact(problem["title"])
    status = response.status_code
    where = f"{request.method} {request.url.path}"
    if status == 401:
        return token_invalid(details)
    if status == 429:
        wait = retry_after_seconds(response, problem)
        if wait is not None:
            details["retry_after"] = wait
        return CloudError(
            f"Replicate is throttling requests ({where})"
            + (f"; retry in {wait:g} s." if wait is not None else "."),
            code="rate_limited",
            hint="Wait and retry. Accounts with little credit get much lower rate limits.",
            details=details,
        )
    if status >= 500:
        return ProviderUnavailable(f"Replicate is failing: HTTP {status} on {where}.", details=details)
    if status == 404:  # its own code: `not_found` is this API's unknown path
        return CloudError(
            details.get("detail") or f"Not found at Replicate: {where}.",
            code="provider_not_found",
            hint=MODEL_NOT_FOUND_HINT if "/v1/models/" in request.url.path else GONE_HINT,
            details=details,
        )
    if status == 413:
        return CloudError(
            details.get("detail") or "Replicate refused the upload as too large.",
            code="upload_too_large",
            hint="Files must be at most 100 MB.",
            details=details,
        )
    if status == 422:
        fields = problem.get("invalid_fields")
        if isinstance(fields, list):
            details["invalid_fields"] = fields
        return CloudError(
            f"Replicate refused the request: {details.get('detail') or details.get('title') or 'invalid'}",
            code="provider_invalid_input",
            hint="Fix the named fields; the trainer's inputs are listed by its model version.",
            details=details,
        )
    return CloudError(
        f"Replicate answered HTTP {status} on {where}: {details.get('detail') or 'no detail'}",
        code="provider_error",
        hint=PROVIDER_ERROR_HINT,
        details=details,
    )


def error_from_network(request: httpx.Request, exc: httpx.TransportError) -> CloudError:
    host = request.url.host
    kind = type(exc).__name__
    reason = redact(str(exc)) or kind
    if isinstance(exc, httpx.TimeoutException):
        message = f"Replicate did not answer in time ({kind}) at {host}."
    elif isinstance(exc, httpx.ProxyError):
        message = f"The HTTP proxy refused or failed the connection to {host}: {reason}"
    else:
        message = f"Could not reach Replicate at {host}: {reason}"
    details = evidence(request)
    details["network_error"] = kind
    return ProviderUnavailable(message, details=details)
