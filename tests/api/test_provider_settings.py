"""`GET/PUT /api/cloud/providers/replicate`: defaults, partial updates, validation naming the
field, and the seed's curl example run verbatim with the real curl binary against a live server."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port, live_server

# The seed's example (REPLICATE.pt-BR.md, "Exemplo de configuracao de allowlist de IP"), verbatim.
SEED_CURL = """curl -X PUT http://localhost:8080/api/cloud/providers/replicate \\
  -H "Content-Type: application/json" \\
  -d '{
    "webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"]
  }'"""

DEFAULTS: dict[str, Any] = {
    "model": None,
    "version": None,
    "hardware": "l40s",
    "public_url": None,
    "webhook_allowed_ips": [],
    "trusted_proxies": [],
    "require_signature": True,
    "cost_limit": {"enabled": False, "amount": None, "period": "monthly", "action": "warn"},
    "http_timeout": 30.0,
    "proxy_url": None,
    "data_consent": "ask",
    "derived": {"trainer_model": "simpletuner/advanced-trainer", "webhook_url": None},
}
URL = "/api/cloud/providers/replicate"


async def test_defaults(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 200
    assert response.json() == DEFAULTS


async def test_partial_update_keeps_other_values(client: httpx.AsyncClient) -> None:
    first = await client.put(
        URL,
        json={
            "hardware": "a100",
            "public_url": "https://training.example.com/",
            "trusted_proxies": ["10.0.0.1", "fd00::/8"],
            "cost_limit": {"enabled": True, "amount": 50, "period": "weekly"},
            "data_consent": "allow",
        },
    )
    assert first.status_code == 200
    second = await client.put(URL, json={"require_signature": False, "cost_limit": {"action": "block"}})
    assert second.json() == {
        **DEFAULTS,
        "hardware": "a100",
        "public_url": "https://training.example.com",
        "trusted_proxies": ["10.0.0.1", "fd00::/8"],
        "require_signature": False,
        "cost_limit": {"enabled": True, "amount": 50.0, "period": "weekly", "action": "block"},
        "data_consent": "allow",
        "derived": {
            "trainer_model": "simpletuner/advanced-trainer-a100",
            "webhook_url": "https://training.example.com/api/webhooks/replicate",
        },
    }
    assert (await client.get(URL)).json() == second.json()


async def test_null_resets_to_the_default(client: httpx.AsyncClient) -> None:
    await client.put(URL, json={"hardware": "a100", "version": "A" * 64, "http_timeout": 5})
    answer = (await client.put(URL, json={"hardware": None, "version": None})).json()
    assert (answer["hardware"], answer["version"], answer["http_timeout"]) == ("l40s", None, 5.0)


async def test_ips_and_cidrs_are_normalised(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        URL, json={"webhook_allowed_ips": ["34.82.7.7/16", " 2001:DB8::1 ", "35.185.0.1"]}
    )
    assert answer.json()["webhook_allowed_ips"] == ["34.82.0.0/16", "2001:db8::1", "35.185.0.1"]


def _error(response: httpx.Response) -> tuple[int, str, list[str]]:
    error = response.json()["error"]
    fields = error["details"]["fields"]
    return response.status_code, error["message"], [f["field"] for f in fields]


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"webhook_allowed_ips": ["34.82.0.0/16", "not-an-ip"]},
            "webhook_allowed_ips.1",
            "'not-an-ip' is not",
        ),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies.0", "not an IPv4/IPv6"),
        ({"public_url": "https://example.com/api/webhooks/replicate"}, "public_url", "no path or query"),
        ({"public_url": "ftp://example.com"}, "public_url", "http(s) URL"),
        ({"public_url": "https://bob:pw@example.com"}, "public_url", "user name or password"),
        ({"version": "latest"}, "version", "64-character hex"),
        ({"http_timeout": 0}, "http_timeout", "greater than 0"),
        ({"proxy_url": "proxy.local:3128"}, "proxy_url", "proxy URL"),
        ({"data_consent": "maybe"}, "data_consent", "'ask', 'allow' or 'deny'"),
        ({"cost_limit": {"period": "yearly"}}, "cost_limit.period", "daily"),
        ({"hardware": "h100"}, "hardware", "unknown hardware 'h100'; choose one of l40s, a100"),
        ({"cost_limit": {"enabled": True}}, "cost_limit", "needs an `amount`"),
        ({"webhook_alowed_ips": []}, "webhook_alowed_ips", "Extra inputs are not permitted"),
    ]
    for body, field, words in cases:
        status, message, fields = _error(await client.put(URL, json=body))
        assert status == 422, body
        assert field in fields, (body, fields)
        assert f"`{field}`" in message and words in message, message
    assert (await client.get(URL)).json() == DEFAULTS  # nothing was saved


async def test_proxy_password_is_masked_and_round_trips(client: httpx.AsyncClient, app: FastAPI) -> None:
    secret = "http://bob:s3cret@proxy.internal:3128"
    answer = (await client.put(URL, json={"proxy_url": secret})).json()
    assert answer["proxy_url"] == "http://bob:***@proxy.internal:3128"
    again = await client.put(URL, json=answer)  # GET -> edit -> PUT, derived included
    assert again.status_code == 200
    assert "s3cret" not in again.text
    async with app.state.database.session() as session:
        assert (await load_replicate_settings(session, app.state.settings)).proxy_url == secret


async def test_json_is_required(client: httpx.AsyncClient) -> None:
    response = await client.put(URL, content=b"webhook_allowed_ips=1.2.3.4")
    assert response.status_code == 415


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"])
async def test_the_seed_request_is_local_over_either_loopback(app: FastAPI, peer: str, host: str) -> None:
    """curl resolves `localhost` to ::1 and 127.0.0.1 and uses whichever the server listens on; both,
    with any loopback Host header, are the local user (no login)."""
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        response = await http.put(
            URL,
            content=b'{"webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"]}',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_allowed_ips"] == ["34.82.0.0/16", "35.185.0.0/16"]


def test_seed_curl_example_verbatim() -> None:
    port = free_port()
    app = create_app(load_settings(port=port))
    with live_server(app, port=port) as base, httpx.Client(base_url=base, trust_env=False) as http:
        http.put(
            URL, json={"hardware": "a100", "public_url": "https://training.example.com"}
        ).raise_for_status()
        command = SEED_CURL.replace("localhost:8080", f"localhost:{port}")
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        assert '"webhook_allowed_ips":["34.82.0.0/16","35.185.0.0/16"]' in done.stdout
        after = http.get(URL).json()
    assert after == {
        **DEFAULTS,
        "hardware": "a100",
        "public_url": "https://training.example.com",
        "webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"],
        "derived": {
            "trainer_model": "simpletuner/advanced-trainer-a100",
            "webhook_url": "https://training.example.com/api/webhooks/replicate",
        },
    }
