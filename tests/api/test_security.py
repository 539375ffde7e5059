"""Each way a request can reach a management route, one test per case."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.api.security import require_management_access
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token
from simpletuner_cloud.settings import load_settings
from tests.api.conftest import remote_client

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


UNAUTHORIZED = {
    "error": {
        "code": "unauthorized",
        "message": "Authentication required: this request does not come from the local user.",
        "hint": "Open the login link that `simpletuner server` printed, or send `Authorization: Bearer "
        "<admin token>` (the token is in ~/.simpletuner/cloud/admin_token).",
    }
}


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
    "header", ["X-Forwarded-For", "X-Real-IP", "Forwarded", "CF-Connecting-IP", "X-Forwarded-Host"]
)
async def test_forwarding_header_needs_token(
    app_with_probe: FastAPI, client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/api/cloud/probe", headers={header: "198.51.100.4"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_foreign_host_header_needs_token(app_with_probe: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/probe", headers={"Host": "evil.example"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


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


async def test_wrong_bearer_is_refused(app_with_probe: FastAPI) -> None:
    async with remote_client(app_with_probe) as http:
        response = await http.get(
            "/api/cloud/probe", headers={"Authorization": "Bearer st_wrong-token-value"}
        )
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


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


async def test_admin_token_file_is_private(app: FastAPI) -> None:
    path = app.state.settings.admin_token_path
    assert path.stat().st_mode & 0o777 == 0o600
