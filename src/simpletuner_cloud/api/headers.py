"""Headers every answer carries: browser hardening (no MIME sniffing, no framing, no referrer), and in
sandbox mode the banner, so any client (the CLI included) can tell it is talking to the emulator.
Pure ASGI, so streamed answers (Server-Sent Events, downloads) pass through untouched."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simpletuner_cloud.settings import SANDBOX_BANNER, SANDBOX_HEADER

HARDENING: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class ResponseHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, sandbox: bool) -> None:
        self.app = app
        self.extra = HARDENING + (
            ((SANDBOX_HEADER.lower().encode(), SANDBOX_BANNER.encode()),) if sandbox else ()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in self.extra if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
