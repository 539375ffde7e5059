"""Fault injection: the JSON model behind `POST /faults`, and the ASGI layer that turns the
request-level knobs (429s, 5xx bursts, dropped connections, latency, slow bodies) into answers
before or after the real handler. Run-shaping knobs (scripts, timeouts) are read by the runtime."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

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


class ConnectionDropFault(RouteMatch):
    count: int = Field(default=0, ge=0)
    # Create routes only: the prediction, training or file is created, then the connection is
    # closed with no answer at all ("maybe created"). False: dropped before anything is created.
    after_create: bool = True


class SlowBodyFault(RouteMatch):
    response_delay: float = Field(default=0.0, ge=0, description="Seconds before each response chunk")
    request_delay: float = Field(default=0.0, ge=0, description="Seconds before each request chunk is read")
    chunk_bytes: int = Field(default=1024, ge=1)
    count: int | None = Field(
        default=None, ge=0, description="Only the next N matching requests; null means all"
    )

    def active(self, method: str, path: str) -> bool:
        return (
            bool(self.response_delay or self.request_delay) and self.count != 0 and self.matches(method, path)
        )


class ScriptMatch(_Knob):
    """Which creates a script applies to; every criterion given must hold."""

    webhook_query: dict[str, str] = Field(
        default_factory=dict, description='Query values of the webhook URL, e.g. {"job": "<local id>"}'
    )
    input: dict[str, Any] = Field(default_factory=dict, description="Input fields equal to these values")
    kind: Literal["prediction", "training"] | None = None

    def matches(self, kind: str, webhook: str | None, inputs: dict[str, Any]) -> bool:
        if self.kind is not None and self.kind != kind:
            return False
        if self.webhook_query:
            query = parse_qs(urlsplit(webhook or "").query)
            if any(query.get(name) != [value] for name, value in self.webhook_query.items()):
                return False
        return all(name in inputs and inputs[name] == value for name, value in self.input.items())


CUDA_OOM_ERROR = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
    "of 44.39 GiB of which 1.53 GiB is free. Of the allocated memory 40.12 GiB is allocated by PyTorch, "
    "and 1.93 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large "
    "try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
    "documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
)


class JobScript(_Knob):
    """A scripted outcome for the jobs it matches (docs/sandbox.md, "Scripted outcomes")."""

    match: ScriptMatch = Field(default_factory=ScriptMatch)
    times: int | None = Field(
        default=None, ge=0, description="Applies to the next N matching creates; null means every one"
    )
    outcome: Literal["succeed", "fail", "queued", "cancel"] = "succeed"
    at_step: int | None = Field(
        default=None, ge=1, description="fail/cancel at this training step; null: while still starting"
    )
    queued_seconds: float | None = Field(
        default=None, description="Sandbox-clock seconds in `starting` first; negative: until canceled"
    )
    error: str | None = None  # the prediction's `error` for `fail`
    log_lines: list[str] = Field(default_factory=list)  # printed just before the failure
    preset: Literal["cuda_oom"] | None = None

    def failure(self, step: int | None, total: int) -> tuple[str, list[str]]:
        """The error text and the log lines that precede `[STAGE] ✗ Training Aborted`."""
        error = self.error
        if error is None and self.preset == "cuda_oom":
            error = CUDA_OOM_ERROR
        if error is None:
            error = (
                f"RuntimeError: simulated trainer failure at step {step} of {total} (sandbox fault)"
                if step is not None
                else "RuntimeError: simulated failure before training started (sandbox fault)"
            )
        return error, list(self.log_lines) or [f"[ERROR] Training failed: {error}"]

    @property
    def stop_step(self) -> int | None:
        """The step a fail or cancel happens at (the OOM preset defaults to the first step)."""
        if self.outcome not in ("fail", "cancel"):
            return None
        if self.at_step is None and self.preset == "cuda_oom" and self.outcome == "fail":
            return 1
        return self.at_step

    def waits_in_starting(self) -> float | None:
        """Sandbox-clock seconds to stay in `starting`: 0 for none, None for "until canceled"."""
        seconds = self.queued_seconds
        if seconds is None:
            return None if self.outcome == "queued" else 0.0
        return None if seconds < 0 else seconds


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
    connection_drops: ConnectionDropFault = Field(default_factory=ConnectionDropFault)
    slow_bodies: SlowBodyFault = Field(default_factory=SlowBodyFault)
    scripts: list[JobScript] = Field(default_factory=list)
    # Replicate stops a run after 30 min of running (docs); measured on the sandbox clock.
    run_timeout_seconds: float = Field(default=1800.0, gt=0)
    webhooks: WebhookFaults = Field(default_factory=WebhookFaults)
    status_page: StatusPageFault = Field(default_factory=StatusPageFault)

    def merged(self, update: dict[str, Any]) -> Faults:
        """A partial update: sections named in `update` replace the current ones."""
        return Faults.model_validate({**self.model_dump(), **update})

    def take_script(self, kind: str, webhook: str | None, inputs: dict[str, Any]) -> JobScript | None:
        """The first script that matches a new job, counted down when it has `times`."""
        for script in self.scripts:
            if script.times != 0 and script.match.matches(kind, webhook, inputs):
                if script.times is not None:
                    script.times -= 1
                return script.model_copy(deep=True)
        return None


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


async def drop_connection(receive: Receive) -> None:
    """Close the connection without any answer. ASGI has no such message; under uvicorn the request
    cycle that owns `receive` holds the socket's transport, which is aborted. Without a socket in
    reach (in-process transports) the answer is withheld until the client gives up."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        for _ in range(3):  # let the server see the connection lost, so it adds no 500 of its own
            await asyncio.sleep(0)
        return
    while (await receive())["type"] != "http.disconnect":
        pass


class FaultLayer:
    """Applies to `/v1/...` only: latency first, then a 429, a 5xx or a dropped connection (before
    or after the handler), and slow request and response bodies around the handler."""

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
                await self._create_then(scope, receive, send, errors)
                return
        drops = faults.connection_drops
        if drops.count and drops.matches(method, path):
            if not drops.after_create:
                drops.count -= 1
                await drop_connection(receive)
                return
            if _is_create(method, path):
                await self._create_then(scope, receive, send, drops)
                return
        slow = faults.slow_bodies
        if slow.active(method, path):
            if slow.count is not None:
                slow.count -= 1
            receive, send = _slowed(slow, receive, send)
        await self.app(scope, receive, send)

    async def _create_then(
        self, scope: Scope, receive: Receive, send: Send, fault: ServerErrorFault | ConnectionDropFault
    ) -> None:
        """Run the real create, then replace a success with the fault; a refusal (401, 422, ...)
        created nothing, so it goes out as it is and the fault stays armed."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 0)
        if 200 <= status < 300:
            fault.count -= 1
            if isinstance(fault, ServerErrorFault):
                await server_error(fault)(scope, receive, send)
            else:
                await drop_connection(receive)
            return
        for message in held:
            await send(message)


def _slowed(fault: SlowBodyFault, receive: Receive, send: Send) -> tuple[Receive, Send]:
    """Request chunks handed over late (a slow upload accept: the client's writes back up), and the
    response body cut into `chunk_bytes` pieces sent `response_delay` apart after the headers."""

    async def slow_receive() -> Message:
        message = await receive()
        if fault.request_delay and message["type"] == "http.request":
            await asyncio.sleep(fault.request_delay)
        return message

    async def slow_send(message: Message) -> None:
        if not fault.response_delay or message["type"] != "http.response.body":
            await send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        pieces = [body[i : i + fault.chunk_bytes] for i in range(0, len(body), fault.chunk_bytes)] or [b""]
        for index, piece in enumerate(pieces):
            await asyncio.sleep(fault.response_delay)
            last = index == len(pieces) - 1
            await send({"type": "http.response.body", "body": piece, "more_body": more or not last})

    return slow_receive, slow_send
