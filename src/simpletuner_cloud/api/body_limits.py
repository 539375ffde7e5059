"""Request body limits, enforced before a route reads anything: management JSON is small, webhooks
carry whole prediction objects with logs (Replicate sends megabytes), and the storage ingress and the
mounted sandbox enforce their own limits. A body over its limit gets a JSON 413, never a half-read."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpletuner_cloud.errors import CloudError

MIB = 1024 * 1024
# (path prefix, limit in bytes or None for "enforced downstream"), most specific first.
LIMITS: tuple[tuple[str, int | None], ...] = (
    ("/api/cloud/storage", None),
    ("/sandbox", None),
    ("/api/webhooks", 16 * MIB),
    ("/", 1 * MIB),
)


def limit_for(path: str) -> int | None:
    for prefix, limit in LIMITS:
        if path.startswith(prefix):
            return limit
    return 1 * MIB


def _too_large_body(limit: int) -> bytes:
    error = CloudError(
        f"The request body is larger than this endpoint accepts ({limit:,} bytes).",
        code="payload_too_large",
        hint="Send a smaller body; datasets are uploaded by the server, not through this endpoint.",
    )
    return json.dumps(error.to_body()).encode()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope.get("path", ""))
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reject(send, limit)
            return
        received = 0
        state = {"started": False, "rejected": False}

        async def limited_receive() -> Message:
            nonlocal received
            if state["rejected"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now, then tell the app the client is gone, so it stops reading.
                    if not state["started"]:
                        await _reject(send, limit)
                    state["rejected"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["rejected"]:
                return  # the 413 already went out; drop whatever the app says after it
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["rejected"]:
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, limit: int) -> None:
    body = _too_large_body(limit)
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
