"""Replicate-shaped errors: RFC 7807 problem+json bodies with the exact strings of
docs/replicate-api.md section 1.3, and the guard that keeps tracebacks away from clients."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("simpletuner_cloud.sandbox")

PROBLEM_JSON = "application/problem+json"

UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}
FILE_NOT_FOUND = {"detail": "File not found"}
NOT_FOUND = {"detail": "Not found.", "status": 404}
DESTINATION_NOT_FOUND = {"detail": "The specified training destination does not exist", "status": 404}
# Replicate's wording for this case is unknown (docs/decisions.md); the spec only promises a 4XX.
DESTINATION_NOT_OWNED = {
    "title": "Permission denied",
    "detail": "The specified training destination is owned by another account: a training can only "
    "create versions of a model you own",
    "status": 403,
}
FILE_TOO_LARGE = {"detail": "Files must be less than 100MB in size"}
INVALID_VERSION = {
    "title": "Invalid version or not permitted",
    "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)",
    "status": 422,
}
INTERNAL_ERROR = {"detail": "Internal server error", "status": 500}


class Problem(Exception):
    """Raised anywhere in a route; rendered as problem+json with the given status and body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("detail", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body).encode(), status_code=status, media_type=PROBLEM_JSON, headers=headers or {}
    )


def bad_request(detail: str) -> Problem:
    return Problem(400, {"detail": detail, "status": 400})


def validation_problem(invalid_fields: list[dict[str, str]]) -> Problem:
    """422 "Input validation failed", worded like Replicate's (gojsonschema) messages."""
    # gojsonschema names the document root `(root)`; Replicate's `invalid_fields` leave it empty.
    detail = "".join(f"- {item['field'] or '(root)'}: {item['description']}\n" for item in invalid_fields)
    return Problem(
        422,
        {
            "title": "Input validation failed",
            "status": 422,
            "detail": detail,
            "invalid_fields": invalid_fields,
        },
    )


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.body, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in Replicate's shape."""
    status = getattr(exc, "status_code", 500)
    if isinstance(exc, StarletteHTTPException) and status == 404:
        return problem_response(404, NOT_FOUND)
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else "Error"
    return problem_response(status, {"detail": str(detail), "status": status})


class ProblemGuard:
    """Outermost layer: any exception that escapes becomes a 500 problem+json (never a traceback),
    and is not re-raised, so a host app that mounts the sandbox never sees it either."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("sandbox: unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await problem_response(500, INTERNAL_ERROR)(scope, receive, send)
