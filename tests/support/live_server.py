"""Run an ASGI app under a real uvicorn on a free loopback port, for tests where sockets matter
(webhook delivery, boto3, the official replicate client, the browser)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: Any, host: str = "127.0.0.1", port: int | None = None, **config: Any) -> Iterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT`); stops the server on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", **config)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a bound for a loaded machine; the wait ends once it serves
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def raw_http(base_url: str, head: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send `head` (request line and header lines, each ending in CRLF) exactly as written, with
    `Connection: close`, to a live server; return the status and body. For what httpx will not send
    (two Host headers, odd header names)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body
