"""`public_url`: https (http only for this machine), no path, one normalised spelling; the API refuses
the rest with the field named."""

from __future__ import annotations

import httpx
import pytest

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.services.provider_fields import job_webhook_url, public_base_url
from simpletuner_cloud.settings import load_settings


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("https://Training.Example.COM:443/", "https://training.example.com"),
        ("https://training.example.com.", "https://training.example.com"),
        ("https://abc.ngrok-free.app:8443", "https://abc.ngrok-free.app:8443"),
        ("https://[2001:DB8:0::1]:443", "https://[2001:db8::1]"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:80/", "http://localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://sandbox.localhost:8080", "http://sandbox.localhost:8080"),
    ],
)
def test_public_url_is_normalised(value: str, normalised: str) -> None:
    assert public_base_url(value) == normalised


@pytest.mark.parametrize(
    "value",
    ["http://training.example.com", "http://10.0.0.5:8080", "http://192.168.1.20", "http://[fd00::1]"],
)
def test_http_is_refused_for_anything_but_this_machine(value: str) -> None:
    with pytest.raises(ValueError, match="must use https"):
        public_base_url(value)


def test_a_jobs_webhook_url_never_keeps_a_line_break() -> None:
    """Unlike a `$`-anchored regex, the check strips the ends and then refuses any whitespace left, so
    the URL the job later sends to never carries a newline (httpx would refuse it at delivery)."""
    assert job_webhook_url("https://hooks.example.com/st?job=1\n") == "https://hooks.example.com/st?job=1"
    for value in (
        "https://hooks.example.com/st\n/x",
        "https://hooks.example.com/s t",
        "https://h.example/\x00",
    ):
        with pytest.raises(ValueError, match="must not contain spaces, line breaks"):
            job_webhook_url(value)


async def test_the_api_names_the_field_and_the_tunnel() -> None:
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            refused = await http.put(
                "/api/cloud/providers/replicate", json={"public_url": "http://example.com"}
            )
            saved = await http.put(
                "/api/cloud/providers/replicate", json={"public_url": "https://Example.com:443/"}
            )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["fields"][0]["field"] == "public_url"
    assert "ngrok http 8080" in error["message"]
    assert saved.json()["public_url"] == "https://example.com"
    assert saved.json()["derived"]["webhook_url"] == "https://example.com/api/webhooks/replicate"
