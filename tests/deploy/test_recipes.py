"""The reverse-proxy recipes of `deploy/` (the seed's nginx, Caddy and Traefik configurations) in front
of `simpletuner server --sandbox`, with the real binaries on loopback: an allowed source's signed
webhook reaches the receiver (which sees the real client through X-Forwarded-For), a refused one gets
403, and the other paths stay closed to callers that are not local. The self-test runs through Caddy
as a tunnel-like proxy, and through the seed's nginx config as printed, whose 1 MiB default body limit
it reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.security.admin_token import read_admin_token
from tests.deploy.proxies import HOST, INTERNAL_SOURCE, OUTSIDER, REPLICATE_SOURCES, caddy, nginx, traefik
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.tls import self_signed
from tests.support.waiting import eventually_sync
from tests.support.webhooks import prediction, signed

HOOK = "/api/webhooks/replicate"
SETTINGS = "/api/cloud/providers/replicate"
SERVER_ALLOWLIST = [f"{source}/32" for source in REPLICATE_SOURCES]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, FastAPI, int]]:
    # Its own state root: a module-wide server is made before the tests' SIMPLETUNER_HOME is set.
    with (
        sandbox_mode_server(home=tmp_path_factory.mktemp("home")) as (base, app),
        httpx.Client(base_url=base, trust_env=False, timeout=60) as http,
    ):
        answer = http.put(
            SETTINGS, json={"trusted_proxies": ["127.0.0.1"], "webhook_allowed_ips": SERVER_ALLOWLIST}
        )
        assert answer.status_code == 200, answer.text
        yield http, app, int(base.rsplit(":", 1)[1])


def delivery(app: FastAPI, body: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    secret = app.state.sandbox_app.state.sandbox.webhook_secret
    return signed(body or prediction("p_behind_proxy"), secret=secret)


def latest(http: httpx.Client) -> dict[str, Any]:
    return http.get("/api/cloud/webhooks/deliveries", params={"limit": 1}).json()["deliveries"][0]  # type: ignore[no-any-return]


def post_hook(client: httpx.Client, app: FastAPI, **headers: str) -> httpx.Response:
    raw, signed_headers = delivery(app)
    return client.post(HOOK, content=raw, headers={**signed_headers, **headers})


def test_nginx_with_tls(server: tuple[httpx.Client, FastAPI, int], tmp_path: Path) -> None:
    http, app, port = server
    cert, key = self_signed(tmp_path / "tls")
    with nginx(tmp_path / "nginx", port, cert, key) as proxy:
        with proxy.client(REPLICATE_SOURCES[1]) as replicate:
            passed = post_hook(replicate, app)
            logs = "Step 1 of 1: loss 0.1, lr 0.0001\n" + "x" * (10 * 1024 * 1024)
            raw, headers = delivery(app, prediction("p_big", "processing", logs=logs))
            big = replicate.post(HOOK, content=raw, headers=headers)
        assert (passed.status_code, passed.json()["outcome"]) == (200, "ignored"), passed.text
        assert latest(http)["client_ip"] == REPLICATE_SOURCES[1] and big.status_code == 200
        with proxy.client(OUTSIDER) as outsider:
            refused = post_hook(outsider, app)
            closed = outsider.get("/api/cloud/providers")
        assert refused.status_code == 403 and "nginx" in refused.text
        assert closed.status_code == 403 and "nginx" in closed.text
        with proxy.client(INTERNAL_SOURCE) as colleague:
            no_token = colleague.get("/api/cloud/providers")
            token = read_admin_token(app.state.settings)
            with_token = colleague.get("/api/cloud/providers", headers={"Authorization": f"Bearer {token}"})
        assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthorized"
        assert with_token.status_code == 200


def test_a_colleague_signs_in_and_changes_settings_through_nginx_on_another_port(
    server: tuple[httpx.Client, FastAPI, int], tmp_path: Path
) -> None:
    """The session cookie is Secure behind TLS, and a change from the Cloud tab passes the Origin check
    on a port other than 443 (the seed's `$host` dropped the port, and every change was refused)."""
    http, app, port = server
    cert, key = self_signed(tmp_path / "tls")
    with nginx(tmp_path / "nginx", port, cert, key) as proxy:
        proxy_port = proxy.url.rsplit(":", 1)[1]
        headers = {"Host": f"{HOST}:{proxy_port}", "Origin": f"https://{HOST}:{proxy_port}"}
        with proxy.client(INTERNAL_SOURCE, headers=headers) as colleague:
            token = read_admin_token(app.state.settings)
            signed_in = colleague.get("/login", params={"token": token})
            assert signed_in.status_code == 303, signed_in.text
            assert "; secure" in signed_in.headers["set-cookie"].lower()
            cookie = signed_in.headers["set-cookie"].split(";", 1)[0]
            changed = colleague.put(SETTINGS, json={"http_timeout": 31}, headers={"Cookie": cookie})
        assert changed.status_code == 200, changed.text
        assert changed.json()["http_timeout"] == 31.0
        assert http.put(SETTINGS, json={"http_timeout": None}).status_code == 200


def test_the_self_test_through_the_nginx_recipe_names_the_proxys_allowlist(
    server: tuple[httpx.Client, FastAPI, int], tmp_path: Path
) -> None:
    """The recipe lets only Replicate's ranges reach the webhook path, and the test leaves from this
    machine: the proxy's 403, not a forwarding problem."""
    http, _, port = server
    cert, key = self_signed(tmp_path / "tls")
    with nginx(tmp_path / "nginx", port, cert, key, tls=False) as proxy:
        assert http.put(SETTINGS, json={"public_url": proxy.url}).status_code == 200
        try:
            result = http.post(f"{SETTINGS}/test-webhook").json()
        finally:
            http.put(SETTINGS, json={"public_url": None})
    assert (result["ok"], result["problem"], result["status"]) == (False, "proxy_refused", 403)
    assert "Replicate's ranges" in result["hint"]


def test_the_seeds_nginx_config_as_printed_refuses_big_deliveries_and_the_self_test_says_so(
    server: tuple[httpx.Client, FastAPI, int], tmp_path: Path
) -> None:
    http, _, port = server
    cert, key = self_signed(tmp_path / "tls")
    sources = ("127.0.0.1", REPLICATE_SOURCES[1])  # the self-test leaves from 127.0.0.1
    with nginx(
        tmp_path / "nginx", port, cert, key, tls=False, body_limit=False, webhook_sources=sources
    ) as proxy:
        assert http.put(SETTINGS, json={"public_url": proxy.url}).status_code == 200
        try:
            result = http.post(f"{SETTINGS}/test-webhook").json()
        finally:
            http.put(SETTINGS, json={"public_url": None})
    assert (result["ok"], result["problem"], result["status"]) == (False, "proxy_body_limit", 413)
    assert "client_max_body_size 16m" in result["hint"]


def test_caddy_as_a_tunnel(server: tuple[httpx.Client, FastAPI, int], tmp_path: Path) -> None:
    http, app, port = server
    with caddy(tmp_path / "caddy", port) as proxy:
        with proxy.client(REPLICATE_SOURCES[0]) as replicate:
            passed = post_hook(replicate, app)
        assert (passed.status_code, passed.json()["outcome"]) == (200, "ignored"), passed.text
        assert latest(http)["client_ip"] == REPLICATE_SOURCES[0]
        with proxy.client(OUTSIDER) as outsider:
            spoofed = post_hook(outsider, app, **{"X-Forwarded-For": REPLICATE_SOURCES[0]})
            closed = outsider.get("/api/cloud/providers")
        assert spoofed.status_code == 403, spoofed.text
        assert spoofed.json()["error"]["details"] == {"client_ip": OUTSIDER}  # Caddy replaced the header
        assert (closed.status_code, closed.text) == (403, "Forbidden")
        with proxy.client(INTERNAL_SOURCE) as colleague:
            assert colleague.get("/api/cloud/providers").status_code == 401

        # The self-test through the tunnel-like proxy (the allowlist set aside: the test comes from here).
        assert (
            http.put(SETTINGS, json={"public_url": proxy.url, "webhook_allowed_ips": []}).status_code == 200
        )
        try:
            result = http.post(f"{SETTINGS}/test-webhook").json()
        finally:
            http.put(SETTINGS, json={"public_url": None, "webhook_allowed_ips": SERVER_ALLOWLIST})
    assert result["ok"] is True, result
    assert (result["url"], result["status"]) == (f"{proxy.url}{HOOK}", 200)


def test_traefik_file_provider(server: tuple[httpx.Client, FastAPI, int], tmp_path: Path) -> None:
    _, app, port = server
    with traefik(tmp_path / "traefik", port) as proxy:
        with proxy.client(REPLICATE_SOURCES[0], headers={"Host": HOST}) as replicate:

            def routed() -> httpx.Response | None:
                try:  # until the file provider's routes are in, TLS and routing are not
                    answer = post_hook(replicate, app)
                except httpx.ConnectError:
                    return None
                return answer if answer.headers.get("content-type") == "application/json" else None

            passed = eventually_sync(routed, interval=0.1, what="Traefik loading its routes")
        assert (passed.status_code, passed.json()["outcome"]) == (200, "ignored"), passed.text
        with proxy.client(OUTSIDER, headers={"Host": HOST}) as outsider:
            refused = post_hook(outsider, app)
            other = outsider.get("/api/cloud/providers")
        assert (refused.status_code, refused.text) == (403, "Forbidden")
        assert other.status_code == 401 and other.json()["error"]["code"] == "unauthorized"
