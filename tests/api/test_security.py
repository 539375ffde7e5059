"""Each way a request can reach a management route, one test per case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.api.security import require_management_access, shown_path
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token
from simpletuner_cloud.settings import load_settings
from tests.api.conftest import remote_client
from tests.support.live_server import live_server, raw_http

probe = APIRouter()


@probe.get("/probe")
async def read_probe() -> dict[str, bool]:
    return {"ok": True}


@probe.post("/probe")
async def write_probe(body: dict[str, object]) -> dict[str, object]:
    return {"ok": True, "body": body}


@pytest.fixture
def app_with_probe(app: FastAPI) -> FastAPI:
    app.include_router(probe, prefix="/api/cloud", dependencies=[Depends(require_management_access)])
    return app


def unauthorized(state_root: Path) -> dict[str, Any]:
    """The 401 body; the hint names this installation's admin token file (the suite's state root)."""
    return {
        "error": {
            "code": "unauthorized",
            "message": "Authentication required: this request does not come from the local user.",
            "hint": "Open the login link that `simpletuner server` printed, or send `Authorization: Bearer "
            f"<admin token>` (the token is in {state_root}/cloud/admin_token).",
        }
    }


@pytest.fixture
async def app_bound_to(request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    """An app whose settings say it listens on `request.param` (the CLI's --host)."""
    application = create_app(load_settings(host=request.param))
    application.include_router(probe, prefix="/api/cloud", dependencies=[Depends(require_management_access)])
    async with application.router.lifespan_context(application):
        yield application


def local_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_direct_loopback_passes(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/probe")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


@pytest.mark.parametrize("peer", ["::1", "::ffff:127.0.0.1", "127.0.0.2"])
async def test_ipv6_mapped_and_other_loopback_peers_pass(app_with_probe: FastAPI, peer: str) -> None:
    transport = httpx.ASGITransport(app=app_with_probe, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8080") as http:
        assert (await http.get("/api/cloud/probe")).status_code == 200


@pytest.mark.parametrize("peer", ["::ffff:10.0.0.1", "10.0.0.1", "not-an-ip"])
async def test_non_loopback_peers_need_the_token(app_with_probe: FastAPI, peer: str) -> None:
    async with remote_client(app_with_probe, peer=peer) as http:
        assert (await http.get("/api/cloud/probe")).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "X-Forwarded-For",
        "X-Real-IP",
        "Forwarded",
        "CF-Connecting-IP",
        "X-Forwarded-Host",
        "X-Client-IP",
        "X-Cluster-Client-IP",
        "Fly-Client-IP",
        "X-Original-Forwarded-For",
        "X-Forwarded-Proto",
        "X_Forwarded_For",
        "X_Real_IP",
        "x_cluster_client_ip",
        "Fly_Client_IP",
    ],
)
async def test_forwarding_header_needs_token(
    app_with_probe: FastAPI, client: httpx.AsyncClient, header: str, state_root: Path
) -> None:
    response = await client.get("/api/cloud/probe", headers={header: "198.51.100.4"})
    assert response.status_code == 401
    assert response.json() == unauthorized(state_root)


async def test_foreign_host_header_needs_token(
    app_with_probe: FastAPI, client: httpx.AsyncClient, state_root: Path
) -> None:
    response = await client.get("/api/cloud/probe", headers={"Host": "evil.example"})
    assert response.status_code == 401
    assert response.json() == unauthorized(state_root)


@pytest.mark.parametrize(
    ("host", "clean"),
    [
        ("localhost:80@evil.com", "localhost:80"),
        ("[::1]evil.com", "[::1]"),
        ("127.0.0.1:8080 evil.com", "127.0.0.1:8080"),
        ("localhost:8080/evil.com", "localhost:8080"),
        ("127.0.0.1:http", "127.0.0.1"),
        ("::1", "[::1]:8080"),  # an IPv6 Host must be bracketed
        ("app.localhost.:8080@evil.com", "app.localhost.:8080"),
    ],
)
async def test_a_host_header_that_is_not_a_clean_name_and_port_is_not_local(
    app_with_probe: FastAPI, client: httpx.AsyncClient, host: str, clean: str, state_root: Path
) -> None:
    response = await client.get("/api/cloud/probe", headers={"Host": host})
    assert (response.status_code, response.json()) == (401, unauthorized(state_root))
    assert (await client.get("/api/cloud/probe", headers={"Host": clean})).status_code == 200


async def test_two_host_headers_are_not_local(
    app_with_probe: FastAPI, client: httpx.AsyncClient, state_root: Path
) -> None:
    response = await client.get(
        "/api/cloud/probe", headers=[("Host", "127.0.0.1:8080"), ("Host", "evil.com")]
    )
    assert (response.status_code, response.json()) == (401, unauthorized(state_root))


@pytest.mark.parametrize(
    ("parser", "request_head"),
    [
        ("h11", "Host: 127.0.0.1\r\nX_Forwarded_For: 198.51.100.4"),
        ("httptools", "Host: 127.0.0.1\r\nX_Forwarded_For: 198.51.100.4"),
        ("h11", "Host: 127.0.0.1\r\nFly-Client-IP: 198.51.100.4"),
        ("httptools", "Host: 127.0.0.1\r\nX-Cluster-Client-IP: 198.51.100.4"),
        ("httptools", "Host: 127.0.0.1\r\nHost: evil.example"),  # h11 refuses two Hosts with a 400
        ("h11", "Host: localhost:80@evil.com"),
        ("httptools", "Host: [::1]evil.com"),
    ],
)
def test_what_uvicorn_passes_through_is_judged_the_same(
    app_with_probe: FastAPI, parser: str, request_head: str, state_root: Path
) -> None:
    """Over a real socket: both of uvicorn's HTTP parsers keep underscore header names, and httptools
    passes two Host headers on."""
    with live_server(app_with_probe, http=parser) as base:
        status, body = raw_http(base, f"GET /api/cloud/probe HTTP/1.1\r\n{request_head}\r\n")
        plain_status, plain = raw_http(base, "GET /api/cloud/probe HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert (plain_status, json.loads(plain)) == (200, {"ok": True})
    assert (status, json.loads(body)) == (401, unauthorized(state_root))


async def test_remote_peer_needs_token(app_with_probe: FastAPI) -> None:
    async with remote_client(app_with_probe) as http:
        assert (await http.get("/api/cloud/probe")).status_code == 401


async def test_right_bearer_passes_from_anywhere(app_with_probe: FastAPI) -> None:
    token = read_admin_token(app_with_probe.state.settings)
    async with remote_client(app_with_probe) as http:
        response = await http.get(
            "/api/cloud/probe",
            headers={
                "Authorization": f"Bearer {token}",
                "X-Forwarded-For": "198.51.100.4",
                "Host": "evil.example",
            },
        )
    assert response.status_code == 200


async def test_wrong_bearer_is_refused(app_with_probe: FastAPI, state_root: Path) -> None:
    async with remote_client(app_with_probe) as http:
        response = await http.get(
            "/api/cloud/probe", headers={"Authorization": "Bearer st_wrong-token-value"}
        )
    assert response.status_code == 401
    assert response.json() == unauthorized(state_root)


async def test_the_401_hint_names_the_admin_token_under_simpletuner_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "elsewhere"
    monkeypatch.setenv("SIMPLETUNER_HOME", str(home))
    application = create_app(load_settings())
    async with application.router.lifespan_context(application), remote_client(application) as http:
        hint = (await http.get("/api/cloud/providers")).json()["error"]["hint"]
        login_hint = (await http.get("/login", params={"token": "st_nope"})).json()["error"]["hint"]
    assert f"(the token is in {home}/cloud/admin_token)" in hint
    assert "~/.simpletuner" not in hint
    assert (
        login_hint
        == f"Use the link `simpletuner server` printed (its token is the one in {home}/cloud/admin_token)."
    )


def test_a_path_under_the_home_folder_is_shown_with_a_tilde() -> None:
    assert (
        shown_path(Path.home() / ".simpletuner" / "cloud" / "admin_token")
        == "~/.simpletuner/cloud/admin_token"
    )
    assert shown_path(Path("/srv/simpletuner/cloud/admin_token")) == "/srv/simpletuner/cloud/admin_token"


async def test_login_link_sets_strict_httponly_cookie_that_authorizes(app_with_probe: FastAPI) -> None:
    token = read_admin_token(app_with_probe.state.settings)
    async with remote_client(app_with_probe) as http:
        response = await http.get("/login", params={"token": token})
        assert response.status_code == 303
        cookie_header = response.headers["set-cookie"]
        assert "HttpOnly" in cookie_header
        assert "SameSite=strict" in cookie_header or "SameSite=Strict" in cookie_header
        assert token not in cookie_header  # the cookie carries a derived value, not the token
        assert (await http.get("/api/cloud/probe")).status_code == 200
        http.cookies.set(SESSION_COOKIE, "forged")
        assert (await http.get("/api/cloud/probe")).status_code == 401


async def test_the_sign_in_form_posts_the_token_and_gets_the_same_cookie(app_with_probe: FastAPI) -> None:
    token = read_admin_token(app_with_probe.state.settings)
    async with remote_client(app_with_probe) as http:
        wrong = await http.post("/login", json={"token": "st_nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        assert "set-cookie" not in wrong.headers
        empty = await http.post("/login", json={"token": ""})
        assert empty.status_code == 422 and empty.json()["error"]["code"] == "validation_error"
        form = await http.post("/login", data={"token": token})  # another site's <form> posts this
        assert form.status_code == 422 and "set-cookie" not in form.headers
        response = await http.post("/login", json={"token": token})
        assert response.status_code == 204
        cookie_header = response.headers["set-cookie"]
        assert "HttpOnly" in cookie_header and "samesite=strict" in cookie_header.lower()
        assert token not in cookie_header
        assert (await http.get("/api/cloud/probe")).status_code == 200


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({}, False),  # a browser at http://<address>:8080: a Secure cookie would be dropped
        ({"X-Real-IP": "198.51.100.4"}, True),  # the seed's nginx `location /`: TLS in the proxy, no proto
        ({"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}, True),
        ({"Forwarded": 'for=198.51.100.4;proto="https"'}, True),
        ({"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "http"}, False),  # a proxy on plain HTTP
    ],
)
async def test_the_session_cookie_is_secure_whenever_the_browser_used_https(
    app_with_probe: FastAPI, headers: dict[str, str], secure: bool
) -> None:
    """Behind the shipped HTTPS proxies the server sees plain HTTP: the cookie was never `Secure`."""
    token = read_admin_token(app_with_probe.state.settings)
    async with remote_client(app_with_probe) as http:
        for answer in (
            await http.get("/login", params={"token": token}, headers=headers),
            await http.post("/login", json={"token": token}, headers=headers),
        ):
            assert answer.status_code in (204, 303)
            assert ("; secure" in answer.headers["set-cookie"].lower()) is secure


async def test_wrong_login_token_is_refused(app_with_probe: FastAPI) -> None:
    async with remote_client(app_with_probe) as http:
        response = await http.get("/login", params={"token": "st_nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_cross_origin_post_is_forbidden(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/cloud/probe", json={"a": 1}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "origin_forbidden",
            "message": "Requests from origin 'https://evil.example' may not change settings or jobs.",
            "hint": "Use the Cloud tab served by this server, the CLI, or curl.",
        }
    }


async def test_cross_site_fetch_metadata_is_forbidden(
    app_with_probe: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post("/api/cloud/probe", json={}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


async def test_same_origin_post_passes(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/cloud/probe", json={"a": 1}, headers={"Origin": "http://127.0.0.1:8080"}
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "body": {"a": 1}}


async def test_form_encoded_post_is_unsupported(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/api/cloud/probe", data={"a": "1"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_text_plain_post_is_unsupported(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/cloud/probe", content=b'{"a":1}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_require_auth_turns_local_trust_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLETUNER_REQUIRE_AUTH", "1")
    application = create_app(load_settings())
    application.include_router(probe, prefix="/api/cloud", dependencies=[Depends(require_management_access)])
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            assert (await http.get("/api/cloud/probe")).status_code == 401
            token = read_admin_token(application.state.settings)
            ok = await http.get("/api/cloud/probe", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200


@pytest.mark.parametrize("app_bound_to", ["0.0.0.0", "::", "192.0.2.10"], indirect=True)
async def test_a_non_loopback_bind_turns_local_trust_off(app_bound_to: FastAPI, state_root: Path) -> None:
    async with local_client(app_bound_to) as http:
        refused = await http.get("/api/cloud/probe")
        token = read_admin_token(app_bound_to.state.settings)
        allowed = await http.get("/api/cloud/probe", headers={"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()) == (401, unauthorized(state_root))
    assert allowed.status_code == 200


def test_local_trust_follows_the_bind_address() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert load_settings(host=host).trusts_local_requests is True, host
    for host in ("0.0.0.0", "::", "", "192.0.2.10", "example.com"):
        assert load_settings(host=host).trusts_local_requests is False, host


async def test_trust_local_overrides_the_default_of_a_public_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bound to 0.0.0.0 local trust is off; SIMPLETUNER_TRUST_LOCAL=1 turns it on; REQUIRE_AUTH wins."""
    for env, status in (
        ({}, 401),
        ({"SIMPLETUNER_TRUST_LOCAL": "1"}, 200),
        ({"SIMPLETUNER_TRUST_LOCAL": "1", "SIMPLETUNER_REQUIRE_AUTH": "1"}, 401),
    ):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        application = create_app(load_settings(host="0.0.0.0"))
        application.include_router(
            probe, prefix="/api/cloud", dependencies=[Depends(require_management_access)]
        )
        async with application.router.lifespan_context(application), local_client(application) as http:
            assert (await http.get("/api/cloud/probe")).status_code == status, env
            # a forwarding header still makes the request remote
            forwarded = await http.get("/api/cloud/probe", headers={"X-Forwarded-For": "198.51.100.4"})
            assert forwarded.status_code == 401, env


async def test_admin_token_file_is_private(app: FastAPI) -> None:
    path = app.state.settings.admin_token_path
    assert path.stat().st_mode & 0o777 == 0o600
