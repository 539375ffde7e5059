"""Fault injection: the JSON model behind `POST /faults`, and the ASGI layer that turns the
request-level knobs (429s, 5xx bursts, latency) into responses before or after the real handler."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpletuner_cloud.sandbox.problems import problem_response

WebhookEvent = Literal["start", "output", "logs", "completed"]


class _Knob(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteMatch(_Knob):
    route: str | None = Field(
        default=None, description="Path prefix inside the sandbox, e.g. /v1/predictions"
    )
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.route is None or path.startswith(self.route)


class RateLimitFault(RouteMatch):
    count: int = Field(default=0, ge=0)
    retry_after: int = Field(default=5, ge=0)
    low_credit: bool = False  # the long "less than $5.0 in credit" wording


class ServerErrorFault(RouteMatch):
    count: int = Field(default=0, ge=0)
    status: int = Field(default=503, ge=500, le=599)
    html: bool = False  # an edge proxy's HTML page instead of problem+json
    after_create: bool = False  # create routes only: the job is created, then the answer is a 5xx


class LatencyFault(RouteMatch):
    seconds: float = Field(default=0.0, ge=0)
    count: int | None = Field(
        default=None, ge=0, description="Only the next N matching requests; null means all"
    )


class WebhookFaults(_Knob):
    drop: list[WebhookEvent] | bool = False  # true drops every event
    duplicate: bool = False  # send each delivery twice: same id, timestamp, signature and body
    delay: float = Field(default=0.0, ge=0)  # seconds to wait before each delivery
    reorder: bool = False  # each intermediate event waits for the next one; `completed` overtakes it
    stale_seconds: float = Field(default=0.0, ge=0)  # sign with a timestamp this far in the past
    bad_signature: bool = False  # sign with a different key
    rotation: bool = False  # a two-entry signature header, as during key rotation: one entry is valid
    omit_header: Literal["webhook-id", "webhook-timestamp", "webhook-signature"] | None = None

    def drops(self, event: str) -> bool:
        return self.drop is True or (isinstance(self.drop, list) and event in self.drop)


class StatusPageFault(_Knob):
    indicator: Literal["none", "minor", "major", "critical"] = "none"
    mode: Literal["ok", "timeout", "500", "html", "malformed", "redirect"] = "ok"


class Faults(_Knob):
    rate_limit: RateLimitFault = Field(default_factory=RateLimitFault)
    server_errors: ServerErrorFault = Field(default_factory=ServerErrorFault)
    latency: LatencyFault = Field(default_factory=LatencyFault)
    starting_delay: float = 0.0  # extra seconds in `starting` for new jobs; negative means forever
    fail_at_step: int | None = Field(default=None, ge=1)  # new jobs fail when the trainer reaches this step
    late_validation: bool = False  # input errors fail the job instead of answering 422
    webhooks: WebhookFaults = Field(default_factory=WebhookFaults)
    status_page: StatusPageFault = Field(default_factory=StatusPageFault)

    def merged(self, update: dict[str, Any]) -> Faults:
        """A partial update: sections named in `update` replace the current ones."""
        return Faults.model_validate({**self.model_dump(), **update})


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _is_create(method: str, path: str) -> bool:
    if method != "POST":
        return False
    parts = path.strip("/").split("/")
    return (
        path in ("/v1/predictions", "/v1/files")
        or (len(parts) == 5 and parts[:2] == ["v1", "models"] and parts[4] == "predictions")
        or (len(parts) == 7 and parts[:2] == ["v1", "models"] and parts[6] == "trainings")
    )


def throttled(fault: RateLimitFault) -> Response:
    seconds = fault.retry_after
    if fault.low_credit:
        detail = (
            "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per "
            "minute with a burst of 1 requests while you have less than $5.0 in credit. "
            f"Your rate limit resets in ~{seconds}s."
        )
    else:
        detail = (
            f"Request was throttled. Expected available in {seconds} second{'s' if seconds != 1 else ''}."
        )
    body = {"detail": detail, "status": 429, "retry_after": seconds}
    return problem_response(429, body, {"Retry-After": str(seconds)})


def server_error(fault: ServerErrorFault) -> Response:
    if fault.html:
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:  # 5xx codes without a standard name, such as Cloudflare's 520-527
            phrase = "Error"
        page = (
            f"<html>\r\n<head><title>{fault.status} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{fault.status} {phrase}</h1></center>\r\n"
            "<hr><center>cloudflare</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return Response(page, status_code=fault.status, media_type="text/html")
    return problem_response(fault.status, {"detail": "Internal server error", "status": fault.status})


class FaultLayer:
    """Applies to `/v1/...` only: latency first, then a 429, then a 5xx (before or after the handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        sandbox = scope["app"].state.sandbox
        faults: Faults = sandbox.faults
        method = scope["method"]
        latency = faults.latency
        if latency.seconds and latency.matches(method, path) and latency.count != 0:
            if latency.count is not None:
                latency.count -= 1
            await asyncio.sleep(latency.seconds)
        if faults.rate_limit.count and faults.rate_limit.matches(method, path):
            faults.rate_limit.count -= 1
            await throttled(faults.rate_limit)(scope, receive, send)
            return
        errors = faults.server_errors
        if errors.count and errors.matches(method, path):
            if not errors.after_create:
                errors.count -= 1
                await server_error(errors)(scope, receive, send)
                return
            if _is_create(method, path):
                await self._create_then_fail(scope, receive, send, errors)
                return
        await self.app(scope, receive, send)

    async def _create_then_fail(
        self, scope: Scope, receive: Receive, send: Send, errors: ServerErrorFault
    ) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 0)
        if 200 <= status < 300:
            errors.count -= 1
            await server_error(errors)(scope, receive, send)
            return
        for message in held:  # nothing was created: the real answer (401, 422, ...) goes out
            await send(message)
