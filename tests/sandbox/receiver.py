"""A real loopback webhook receiver for delivery tests: records every request and answers with a
scripted status per event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.live_server import live_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    query: str
    at: float = field(default_factory=time.time)  # wall-clock arrival, like the sandbox's timestamps

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def event_status(self) -> str:
        return str(self.json["status"])


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # event -> statuses to answer in order (then 200); the event is read from the `event` query.
    script: dict[str, list[int]] = field(default_factory=dict)
    on_failure: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        return [item.json for item in self.received]


def _classify(body: dict[str, Any]) -> str:
    return "completed" if body["status"] in ("succeeded", "failed", "canceled", "aborted") else "other"


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        with receiver.lock:
            receiver.received.append(Received(dict(request.headers), body, request.url.query))
            kind = _classify(json.loads(body))
            statuses = receiver.script.get(kind, [])
            status = statuses.pop(0) if statuses else 200
        if status >= 300 and receiver.on_failure is not None:
            receiver.on_failure()
        headers = {"Location": f"{receiver.url}/elsewhere"} if 300 <= status < 400 else {}
        return Response(status_code=status, headers=headers)

    async def elsewhere(request: Request) -> Response:
        raise AssertionError("redirects must never be followed")

    app = Starlette(
        routes=[Route("/hook", hook, methods=["POST"]), Route("/elsewhere", elsewhere, methods=["POST"])]
    )
    with live_server(app) as base:
        receiver.url = base
        yield receiver
