"""`POST /api/cloud/providers/replicate/test-webhook`: a signed 10 MiB test event through the public
URL, against `simpletuner server --sandbox` on a socket; each way it can go wrong is a small loopback
server standing in for what sits at the URL (a redirect, a proxy's 413, another server, a self-signed
certificate), plus a name that does not resolve and a port nobody listens on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.services.webhook_selftest import TEST_BODY_BYTES
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port, live_server
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.tls import self_signed

TEST = "/api/cloud/providers/replicate/test-webhook"
SETTINGS = "/api/cloud/providers/replicate"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, FastAPI]]:
    # A module-wide server needs its own state root: it is made before the tests' own (function-scoped)
    # SIMPLETUNER_HOME, so without one it would share the real ~/.simpletuner with other modules.
    with (
        sandbox_mode_server(home=tmp_path_factory.mktemp("home")) as (base, app),
        httpx.Client(base_url=base, trust_env=False, timeout=60) as http,
    ):
        yield http, app


@pytest.fixture(autouse=True)
def _reset(server: tuple[httpx.Client, FastAPI]) -> Iterator[None]:
    yield
    reset = {"public_url": None, "webhook_allowed_ips": None}
    assert server[0].put(SETTINGS, json=reset).status_code == 200


def stand_in() -> FastAPI:
    """What a misconfigured URL may reach instead of our receiver."""
    app = FastAPI()

    @app.post("/api/webhooks/replicate")
    async def hook(request: Request) -> Response:
        await request.body()
        answer = request.headers.get("x-answer", "")
        mode = request.app.state.mode
        if mode == "redirect":
            return Response(status_code=308, headers={"location": "https://elsewhere.example/hook"})
        if mode == "too_large":
            return PlainTextResponse("<html>413 Request Entity Too Large</html>", status_code=413)
        if mode == "bad_gateway":
            return PlainTextResponse("bad gateway", status_code=502)
        if mode == "proxy_allowlist":  # nginx's `deny all;`
            return PlainTextResponse("<html><center><h1>403 Forbidden</h1></center></html>", status_code=403)
        return JSONResponse({"ok": True, "answer": answer})

    return app


def run(http: httpx.Client, **settings: Any) -> dict[str, Any]:
    if settings:
        assert http.put(SETTINGS, json=settings).status_code == 200
    answer = http.post(TEST)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_a_signed_ten_mebibyte_event_reaches_this_receiver(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    result = run(http)
    assert result["ok"] is True and result["problem"] is None, (result["message"], result.get("client_ip"))
    assert (result["url"], result["status"]) == (
        f"{http.base_url}".rstrip("/") + "/api/webhooks/replicate",
        200,
    )
    assert result["body_bytes"] == TEST_BODY_BYTES > 10 * 1024 * 1024
    assert result["client_ip"] == "127.0.0.1" and result["latency_ms"] >= 0
    recorded = http.get(f"/api/cloud/webhooks/deliveries/{result['delivery_id']}").json()
    assert (recorded["outcome"], recorded["body_kept"], recorded["body_size"]) == (
        "test",
        False,
        TEST_BODY_BYTES,
    )


@pytest.mark.parametrize(
    ("mode", "problem", "words"),
    [
        ("redirect", "redirect", "a redirect to https://elsewhere.example/hook"),
        ("too_large", "proxy_body_limit", "refused a 10,489,856-byte body (413)"),
        ("bad_gateway", "http_status", "answered 502 instead of 2xx"),
        ("proxy_allowlist", "proxy_refused", "answered 403, not in this server's words"),
        ("another_server", "not_this_server", "this server's receiver did not get the event"),
    ],
)
def test_what_answers_instead_of_the_receiver_is_named(
    server: tuple[httpx.Client, FastAPI], mode: str, problem: str, words: str
) -> None:
    http, _ = server
    app = stand_in()
    app.state.mode = mode
    with live_server(app) as url:
        result = run(http, public_url=url)
    assert (result["ok"], result["problem"], result["delivery_id"]) == (False, problem, None)
    assert words in result["message"] and result["hint"]


def test_a_self_signed_certificate_is_a_tls_problem(
    server: tuple[httpx.Client, FastAPI], tmp_path: Path
) -> None:
    http, _ = server
    cert, key = self_signed(tmp_path / "tls")
    with live_server(stand_in(), ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        result = run(http, public_url=url.replace("http://", "https://"))
    assert (result["ok"], result["problem"]) == (False, "tls")
    assert "publicly trusted certificate" in result["hint"]


def test_a_name_that_does_not_resolve_and_a_closed_port(server: tuple[httpx.Client, FastAPI]) -> None:
    http, _ = server
    dns = run(http, public_url="https://does-not-exist.invalid")
    assert (dns["problem"], dns["message"]) == (
        "dns",
        "The host name does-not-exist.invalid does not resolve.",
    )
    closed = run(http, public_url=f"http://127.0.0.1:{free_port()}")
    assert (closed["ok"], closed["problem"], closed["status"]) == (False, "connect", None)


def test_an_allowlist_that_refuses_this_machine_is_reported_as_such(
    server: tuple[httpx.Client, FastAPI],
) -> None:
    http, _ = server
    result = run(http, webhook_allowed_ips=["34.82.0.0/16", "35.185.0.0/16"])
    assert (result["ok"], result["problem"], result["status"], result["client_ip"]) == (
        False,
        "receiver_refused",
        403,
        "127.0.0.1",
    )
    assert "signature was accepted, but the IP allowlist refused it" in result["message"]


async def test_without_a_public_url_there_is_nothing_to_test() -> None:
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            answer = await http.post(TEST)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "public_url_missing"
    assert "ngrok http 8080" in answer.json()["error"]["hint"]


async def test_a_saved_url_httpx_cannot_use_is_reported_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """PUT refuses such a URL now; one saved before (or named another way) is an answer, not a 500."""
    monkeypatch.setattr(
        "simpletuner_cloud.services.webhook_selftest.webhook_url",
        lambda *_: "https://xn--zz/api/webhooks/replicate",
    )
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            answer = await http.post(TEST)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "ok": False,
        "url": "https://xn--zz/api/webhooks/replicate",
        "status": None,
        "latency_ms": None,
        "body_bytes": 0,
        "problem": "invalid_url",
        "message": "The webhook URL https://xn--zz/api/webhooks/replicate cannot be used: Invalid A-label.",
        "hint": "Save `public_url` again (PUT /api/cloud/providers/replicate) with the tunnel's or proxy's "
        "https URL, e.g. https://abc.ngrok-free.app.",
        "client_ip": None,
        "delivery_id": None,
    }
