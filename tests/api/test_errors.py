"""The error envelope: stable codes, JSON 404 for unknown API paths, no tracebacks."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from simpletuner_cloud.api.errors import BODY_UNREADABLE_HINT
from simpletuner_cloud.errors import CloudError


class Thing(BaseModel):
    count: int


async def test_unknown_api_path_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "No such endpoint: GET /api/cloud/nope",
            "hint": "Check the path; the API reference is at /docs.",
        }
    }


async def test_cloud_error_maps_code_to_status(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.get("/api/test/boom")
    async def boom() -> None:
        raise CloudError("REPLICATE_API_TOKEN not set", code="token_missing", hint="export it")

    response = await client.get("/api/test/boom")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "token_missing", "message": "REPLICATE_API_TOKEN not set", "hint": "export it"}
    }


async def test_unexpected_exception_is_500_without_traceback(app: FastAPI) -> None:
    @app.get("/api/test/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals r8_abcdefghijklmnopqrstuvwxyz0123456789a")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        response = await http.get("/api/test/crash")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "Traceback" not in response.text and "r8_" not in response.text


async def test_validation_error_names_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.post("/api/test/thing")
    async def thing(body: Thing) -> Thing:
        return body

    response = await client.post("/api/test/thing", json={"count": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "`count`" in error["message"]
    assert error["details"]["fields"][0]["field"] == "count"


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "worker": True}}


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "simpletuner-cloud"


async def test_malformed_json_names_the_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.post("/api/test/thing2")
    async def thing2(body: Thing) -> Thing:
        return body

    response = await client.post(
        "/api/test/thing2", content=b'{"count": 1,', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["fields"][0]["field"] == "body"
    assert error["message"].startswith("Invalid value for `body`: JSON decode error")


UNREADABLE_BODIES = {
    "not utf-8": b'{"config":"\xe9"}',
    "nested 3000 deep": b'{"config":' * 3000 + b"1" + b"}" * 3000,
    "a 4400-digit integer": b'{"max_train_steps":' + b"9" * 4400 + b"}",
}


async def test_a_body_that_cannot_be_read_is_a_400_with_a_hint(client: httpx.AsyncClient) -> None:
    for name, body in UNREADABLE_BODIES.items():
        response = await client.post(
            "/api/cloud/jobs/submit", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {
            "error": {
                "code": "bad_request",
                "message": "The request body could not be read as JSON.",
                "hint": BODY_UNREADABLE_HINT,
            }
        }, name
    assert (await client.get("/readyz")).status_code == 200  # the deep one broke nothing


async def test_a_405_keeps_its_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/cloud/events")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_405_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    """`GET` and `DELETE /api/cloud/jobs/{id}` are two routes; Starlette's 405 named the first only."""
    response = await client.put("/api/cloud/jobs/job_x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"
