"""Replicate's documented limits as token buckets (prediction creates, everything else), with the
`ratelimit-remaining`/`ratelimit-reset` headers seen in traffic and a 429 when a bucket is empty.
The buckets are the account's: a request without its token passes through uncounted, to the 401."""

from __future__ import annotations

import math
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpletuner_cloud.sandbox.auth import is_authenticated
from simpletuner_cloud.sandbox.faults import RateLimitFault, throttled


class TokenBucket:
    def __init__(self, per_minute: int) -> None:
        self.capacity = float(max(per_minute, 1))
        self.rate = self.capacity / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until one token is back)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 1
        return False, 0, max(1, math.ceil((1 - self.tokens) / self.rate))


def _is_prediction_create(method: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    return method == "POST" and (
        path == "/v1/predictions"
        or (len(parts) == 5 and parts[:2] == ["v1", "models"] and parts[4] == "predictions")
    )


class RateLimitLayer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        path = path[len(root) :] if root and path.startswith(root) else path
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        sandbox = scope["app"].state.sandbox
        if not is_authenticated(sandbox.config, Headers(scope=scope).get("authorization")):
            await self.app(scope, receive, send)
            return
        if _is_prediction_create(scope["method"], path):
            bucket = sandbox.create_bucket
        elif scope["method"] == "GET" and path.startswith("/v1/predictions/") and path.count("/") == 3:
            bucket = sandbox.poll_bucket
        else:
            bucket = sandbox.other_bucket
        allowed, remaining, wait = bucket.take()
        if not allowed:
            await throttled(RateLimitFault(count=1, retry_after=wait))(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["ratelimit-remaining"] = str(remaining)
                headers["ratelimit-reset"] = "1"
            await send(message)

        await self.app(scope, receive, with_headers)
