"""Every answer carries the hardening headers; only a sandboxed server announces itself."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings


async def test_hardening_headers_on_api_pages_and_errors(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/api/cloud/hardware", "/api/cloud/nope", "/cloud", "/static/cloud.css"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert "x-simpletuner-sandbox" not in response.headers, path


async def test_sandbox_server_announces_itself() -> None:
    app: FastAPI = create_app(load_settings(sandbox=True))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            response = await http.get("/healthz")
    assert response.headers["x-simpletuner-sandbox"] == "sandbox: no GPUs, no charges"
