"""Auth, problem bodies, files, catalogue and hardware: the exact shapes of replicate-api.md."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.sandbox import create_sandbox_app
from simpletuner_cloud.sandbox.catalogue import version_id
from simpletuner_cloud.sandbox.files import download_signature
from tests.sandbox.conftest import (
    BASE,
    TOKEN,
    TRAINER,
    client_for,
    create,
    fast_config,
    running,
    upload,
)

UNAUTHENTICATED = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer r8_" + "a" * 37, "Basic abc", "Bearer "])
async def test_bad_tokens_get_replicates_401(api: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    async with httpx.AsyncClient(transport=api._transport, base_url=BASE, headers=headers) as anonymous:
        response = await anonymous.get("/v1/account")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == UNAUTHENTICATED


async def test_legacy_token_scheme_is_accepted(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/account", headers={"Authorization": f"Token {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {
        "type": "user",
        "username": "sandbox",
        "name": "Sandbox (offline Replicate emulator)",
    }


async def test_any_r8_token_when_configured(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, accept_any_r8_token=True))
    async with client_for(app, headers={}) as client:
        ok = await client.get("/v1/account", headers={"Authorization": "Bearer r8_" + "a" * 37})
        short = await client.get("/v1/account", headers={"Authorization": "Bearer r8_short"})
    assert (ok.status_code, short.status_code) == (200, 401)


async def test_default_token_is_a_40_character_sandbox_token() -> None:
    assert len(TOKEN) == 40 and TOKEN.startswith("r8_") and "sandbox" in TOKEN


async def test_unknown_things_are_404_problems(api: httpx.AsyncClient) -> None:
    for path in (
        "/v1/predictions/nope",
        "/v1/models/nobody/nothing",
        "/v1/trainings/nope",
        "/v1/no-such-route",
    ):
        response = await api.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found.", "status": 404}), path
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/files/nope")).json() == {"detail": "File not found"}


async def test_wrong_method_is_a_problem(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/account")
    assert response.status_code == 405 and response.headers["content-type"] == "application/problem+json"


async def test_no_traceback_reaches_the_client(app: FastAPI, api: httpx.AsyncClient) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("secret internals")

    app.state.sandbox.catalogue.get = explode
    response = await api.get(f"/v1/models/{TRAINER}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "status": 500}
    assert "secret internals" not in response.text


async def test_rate_limit_headers_and_buckets(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, other_rate_per_minute=2))
    async with client_for(app) as client:
        first = await client.get("/v1/account")
        second = await client.get("/v1/account")
        third = await client.get("/v1/account")
    assert (first.headers["ratelimit-remaining"], first.headers["ratelimit-reset"]) == ("1", "1")
    assert second.headers["ratelimit-remaining"] == "0"
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    assert third.json()["retry_after"] == int(third.headers["retry-after"])


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Token r8_" + "a" * 37])
async def test_requests_without_the_token_do_not_draw_from_the_accounts_budget(
    tmp_path: Path, header: str | None
) -> None:
    """Authentication comes first: a tokenless GET is a 401 without rate-limit headers, and the
    account's first real call still sees the full bucket."""
    app = create_sandbox_app(fast_config(tmp_path))
    anonymous_headers = {"Authorization": header} if header is not None else {}
    async with client_for(app, headers=anonymous_headers) as anonymous, client_for(app) as account:
        for _ in range(3):
            refused = await anonymous.get("/v1/account")
            assert refused.status_code == 401 and refused.json() == UNAUTHENTICATED
            assert "ratelimit-remaining" not in refused.headers
        assert (await account.get("/v1/account")).headers["ratelimit-remaining"] == "2999"


async def test_a_tokenless_create_is_a_401_even_when_the_create_bucket_is_empty(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, create_rate_per_minute=1))
    version = version_id(TRAINER, "v2")
    body = {"version": version, "input": {}}
    async with client_for(app, headers={}) as anonymous, client_for(app) as account:
        assert (await account.post("/v1/predictions", json=body)).status_code == 201
        assert (await account.post("/v1/predictions", json=body)).status_code == 429
        refused = await anonymous.post("/v1/predictions", json=body)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json() == UNAUTHENTICATED
        assert refused.headers["www-authenticate"] == "Bearer"


async def test_file_upload_shape(api: httpx.AsyncClient) -> None:
    data = b"hello sandbox"
    created = await upload(api, data, name="notes.txt")
    assert created["name"] == "notes.txt" and created["content_type"] == "application/zip"
    assert created["size"] == len(data)
    assert created["etag"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert created["checksums"] == {"sha256": hashlib.sha256(data).hexdigest(), "md5": created["etag"]}
    assert created["urls"] == {"get": f"{BASE}/v1/files/{created['id']}"}
    assert created["metadata"] == {} and created["expires_at"] > created["created_at"]


async def test_explicit_fields_override_part_headers(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/files",
        files={"content": ("part.bin", b"x", "application/octet-stream")},
        data={"filename": "real.zip", "type": "application/zip", "metadata": '{"ref": "r-1"}'},
    )
    body = response.json()
    assert (body["name"], body["content_type"], body["metadata"]) == (
        "real.zip",
        "application/zip",
        {"ref": "r-1"},
    )


async def test_upload_limit_is_413(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, file_size_limit=10))
    async with client_for(app) as client:
        response = await client.post("/v1/files", files={"content": ("a.zip", b"x" * 11, "application/zip")})
        assert (await client.get("/v1/files")).json()["results"] == []
    assert response.status_code == 413
    assert response.json() == {"detail": "Files must be less than 100MB in size"}


async def test_upload_without_content_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/files", data={"filename": "x"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"


async def test_file_list_delete(api: httpx.AsyncClient) -> None:
    first, second = await upload(api, b"one"), await upload(api, b"two")
    assert [f["id"] for f in (await api.get("/v1/files")).json()["results"]] == [second["id"], first["id"]]
    assert (await api.delete(f"/v1/files/{first['id']}")).status_code == 204
    for _ in range(2):
        assert (await api.get(f"/v1/files/{first['id']}")).status_code == 404
        assert (await api.delete(f"/v1/files/{first['id']}")).json() == {"detail": "File not found"}


async def signed_url(api: httpx.AsyncClient, file_id: str, ttl: float = 60) -> str:
    response = await api.post(f"/_sandbox/files/{file_id}/download-url", json={"ttl": ttl})
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


async def test_signed_download_needs_no_token(api: httpx.AsyncClient) -> None:
    uploaded = await upload(api, b"one")
    url = await signed_url(api, uploaded["id"])
    assert parse_qs(urlsplit(url).query).keys() == {"owner", "expiry", "signature"}
    assert parse_qs(urlsplit(url).query)["owner"] == ["sandbox"]
    async with httpx.AsyncClient(transport=api._transport) as anonymous:
        download = await anonymous.get(url)
    assert download.status_code == 200 and download.content == b"one"
    assert download.headers["content-type"] == "application/octet-stream"


def _with(url: str, **changes: str | None) -> str:
    """The URL with query values replaced (None removes one)."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def _resigned(app: FastAPI, file_id: str, owner: str, expiry: str) -> str:
    return download_signature(app.state.sandbox.signing_key, owner, file_id, expiry)


@pytest.mark.parametrize(
    "case", ["token only", "bad signature", "other owner", "expired", "not a number", "no owner", "no expiry"]
)
async def test_download_refuses_anything_but_a_valid_signature(
    app: FastAPI, api: httpx.AsyncClient, case: str
) -> None:
    """Each part of the signed URL is checked, as Replicate does; a token is no substitute. Every
    refusal is the spec's 404, so a probe cannot tell which part was wrong."""
    uploaded = await upload(api, b"one")
    file_id = uploaded["id"]
    url = await signed_url(api, file_id)
    past = str(int(app.state.sandbox.clock.now()) - 1)
    bad = {
        "token only": f"{BASE}/v1/files/{file_id}/download",
        "bad signature": _with(url, signature=base64.b64encode(b"0" * 32).decode()),
        # Signed with the sandbox's own key, so only the owner (not the account) is wrong.
        "other owner": _with(
            url,
            owner="mallory",
            signature=_resigned(app, file_id, "mallory", parse_qs(urlsplit(url).query)["expiry"][0]),
        ),
        "expired": _with(url, expiry=past, signature=_resigned(app, file_id, "sandbox", past)),
        "not a number": _with(url, expiry="soon", signature=_resigned(app, file_id, "sandbox", "soon")),
        "no owner": _with(url, owner=None),
        "no expiry": _with(url, expiry=None),
    }[case]
    response = await api.get(bad)  # with the API token, which must not help
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"detail": "File not found"}


async def test_signed_url_expires_on_the_sandbox_clock(app: FastAPI, api: httpx.AsyncClient) -> None:
    uploaded = await upload(api, b"one")
    url = await signed_url(api, uploaded["id"], ttl=60)
    assert (await api.get(url)).status_code == 200
    app.state.sandbox.clock.advance(61)
    assert (await api.get(url)).json() == {"detail": "File not found"}
    assert (await api.get(f"/v1/files/{uploaded['id']}")).status_code == 200  # the file itself stays


async def test_signed_url_endpoint_refuses_unknown_files_and_bad_ttls(api: httpx.AsyncClient) -> None:
    missing = await api.post("/_sandbox/files/nope/download-url", json={})
    assert (missing.status_code, missing.json()) == (404, {"detail": "File not found"})
    uploaded = await upload(api)
    bad = await api.post(f"/_sandbox/files/{uploaded['id']}/download-url", json={"ttl": -5})
    assert (bad.status_code, bad.json()) == (
        400,
        {"detail": "ttl must be a positive number of seconds", "status": 400},
    )


async def test_files_expire(app: FastAPI, api: httpx.AsyncClient) -> None:
    created = await upload(api)
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert lifetime == timedelta(hours=24)
    app.state.sandbox.clock.advance(86399)
    assert (await api.get(f"/v1/files/{created['id']}")).status_code == 200
    app.state.sandbox.clock.advance(2)
    assert (await api.get(f"/v1/files/{created['id']}")).json() == {"detail": "File not found"}
    assert (await api.get("/v1/files")).json()["results"] == []


async def test_file_expiry_is_configurable(tmp_path: Path) -> None:
    async with running(fast_config(tmp_path, file_expiry_seconds=3600)) as (_, api):
        created = await upload(api)
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(created["created_at"])
    assert lifetime == timedelta(hours=1)


async def test_models_versions_and_schema(api: httpx.AsyncClient) -> None:
    model = (await api.get(f"/v1/models/{TRAINER}")).json()
    assert model["url"] == f"{BASE}/simpletuner/advanced-trainer" and model["visibility"] == "public"
    versions = (await api.get(f"/v1/models/{TRAINER}/versions")).json()
    assert len(versions["results"]) == 2 and versions["results"][0] == model["latest_version"]
    latest, older = (v["openapi_schema"]["components"]["schemas"]["Input"] for v in versions["results"])
    props = latest["properties"]
    assert list(props) == [
        "images", "config_json", "dataloader_json", "max_train_steps", "s3_bucket", "s3_region",
        "s3_endpoint_url", "s3_base_path", "s3_public_base_url", "s3_access_key", "s3_secret_key",
        "hub_model_id", "hf_token", "lycoris_config", "return_logs",
    ]  # fmt: skip
    assert [p["x-order"] for p in props.values()] == list(range(15))
    for secret in ("s3_access_key", "s3_secret_key", "hf_token"):
        assert {k: props[secret][k] for k in ("type", "format", "x-cog-secret")} == {
            "type": "string", "format": "password", "x-cog-secret": True,
        }  # fmt: skip
    assert props["images"]["format"] == "uri" and props["max_train_steps"]["type"] == "integer"
    assert props["s3_base_path"]["default"] == "simpletuner" and props["return_logs"]["default"] is True
    assert "client_ref" not in props and "required" not in latest
    assert "lycoris_config" not in older["properties"]  # the older version predates it
    a100 = (await api.get("/v1/models/simpletuner/advanced-trainer-a100")).json()
    assert a100["latest_version"]["id"] != model["latest_version"]["id"]
    one = await api.get(f"/v1/models/{TRAINER}/versions/{model['latest_version']['id']}")
    assert one.json() == model["latest_version"]
    assert (await api.get(f"/v1/models/{TRAINER}/versions/{'0' * 64}")).status_code == 404


async def test_hardware_lists_section_7_skus(api: httpx.AsyncClient) -> None:
    hardware = (await api.get("/v1/hardware")).json()
    skus = [item["sku"] for item in hardware]
    assert {"gpu-l40s", "gpu-2x-l40s", "gpu-a100-large", "gpu-a100-large-2x", "gpu-h100-8x", "cpu"} <= set(
        skus
    )
    assert {"sku": "gpu-a100-large", "name": "Nvidia A100 (80GB) GPU"} in hardware


async def test_webhook_secret_is_generated_without_underscores(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, webhook_secret=None))
    async with client_for(app) as client:
        key = (await client.get("/v1/webhooks/default/secret")).json()["key"]
    assert key.startswith("whsec_") and "_" not in key[6:] and len(base64.b64decode(key[6:])) == 24


async def test_web_url_is_served(api: httpx.AsyncClient) -> None:
    created = await create(api, {})
    async with httpx.AsyncClient(transport=api._transport) as browser:
        page = await browser.get(created["urls"]["web"])
    assert page.status_code == 200 and created["id"] in page.text and "no charges" in page.text
    assert (await api.get("/p/nope")).status_code == 404


async def test_remaining_counts_per_bucket(api: httpx.AsyncClient) -> None:
    """As in traffic: 2999 after a training create (the general bucket), 599 after a prediction
    create, 59999 on a poll. Each is the first call of its bucket, so the counts are exact."""
    version = version_id(TRAINER, "v2")  # stable ids: no GET needed first
    training = await api.post(
        f"/v1/models/{TRAINER}/versions/{version}/trainings",
        json={"destination": "sandbox/my-lora", "input": {}},
    )
    assert training.status_code == 201 and training.headers["ratelimit-remaining"] == "2999"
    created = await api.post("/v1/predictions", json={"version": version, "input": {}})
    assert created.headers["ratelimit-remaining"] == "599"
    polled = await api.get(f"/v1/predictions/{created.json()['id']}")
    assert (polled.headers["ratelimit-remaining"], polled.headers["ratelimit-reset"]) == ("59999", "1")


async def test_polling_has_its_own_larger_bucket(tmp_path: Path) -> None:
    app = create_sandbox_app(fast_config(tmp_path, other_rate_per_minute=1))
    async with client_for(app) as client:
        assert (await client.get("/v1/account")).status_code == 200
        assert (await client.get("/v1/account")).status_code == 429
        polled = await client.get("/v1/predictions/nope")
    assert polled.status_code == 404 and polled.headers["ratelimit-remaining"] == "59999"
