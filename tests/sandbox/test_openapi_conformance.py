"""Every operation the project calls answers as Replicate's OpenAPI description says: the status code
of the operation (201 for creates, 200 for cancels, 204 for deletes), its media type and its schema,
error answers included where the spec defines them (404 and 413 of the files API).

The sandbox tests' client checks each `/v1` answer against the spec as it arrives (conftest); this
module walks every operation once and proves that none was missed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.response.exceptions import InvalidData

from tests.sandbox.conftest import (
    TRAINER,
    fast_config,
    images_zip,
    running,
    trainer_config,
    wait_until,
)
from tests.sandbox.openapi_spec import SPEC_PATH, assert_conforms, assert_job_body

# (method, spec path, status): every answer of the API surface the project uses.
EXPECTED = {
    ("GET", "/account", 200),
    ("GET", "/hardware", 200),
    ("GET", "/webhooks/default/secret", 200),
    ("POST", "/files", 201),
    ("POST", "/files", 413),
    ("GET", "/files", 200),
    ("GET", "/files/{file_id}", 200),
    ("GET", "/files/{file_id}", 404),
    ("GET", "/files/{file_id}/download", 200),
    ("GET", "/files/{file_id}/download", 404),
    ("DELETE", "/files/{file_id}", 204),
    ("DELETE", "/files/{file_id}", 404),
    ("GET", "/models/{model_owner}/{model_name}", 200),
    ("GET", "/models/{model_owner}/{model_name}/versions", 200),
    ("GET", "/models/{model_owner}/{model_name}/versions/{version_id}", 200),
    ("POST", "/predictions", 201),
    ("POST", "/models/{model_owner}/{model_name}/predictions", 201),
    ("GET", "/predictions", 200),
    ("GET", "/predictions/{prediction_id}", 200),
    ("POST", "/predictions/{prediction_id}/cancel", 200),
    ("POST", "/models/{model_owner}/{model_name}/versions/{version_id}/trainings", 201),
    ("GET", "/trainings", 200),
    ("GET", "/trainings/{training_id}", 200),
    ("POST", "/trainings/{training_id}/cancel", 200),
}


class Walk:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, response: httpx.Response, path: str, status: int) -> httpx.Response:
        """The answer has the operation's status and conforms to the spec's answer for it."""
        assert response.status_code == status, (path, response.status_code, response.text[:300])
        assert_conforms(response)
        self.seen.add((response.request.method, path, status))
        return response


def test_vendored_spec_is_identical_to_the_shared_reference() -> None:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "replicate-openapi.json"
    if not shared.exists():
        pytest.skip("no ../shared/reference next to this checkout")
    assert SPEC_PATH.read_bytes() == shared.read_bytes()


def test_the_checks_reject_a_wrong_body_and_a_wrong_status() -> None:
    request = httpx.Request("GET", "http://sandbox.test/v1/account")
    with pytest.raises(InvalidData):
        assert_conforms(httpx.Response(200, json={"type": "user"}, request=request))
    with pytest.raises(ResponseNotFound):  # the right body under a status the spec does not give
        assert_conforms(httpx.Response(201, json={"type": "user", "username": "x"}, request=request))
    created = httpx.Request("POST", "http://sandbox.test/v1/files")
    with pytest.raises(AssertionError):  # a real host in any answer
        assert_conforms(
            httpx.Response(404, json={"detail": "see https://replicate.com/docs"}, request=created)
        )


async def test_every_operation_the_project_uses(tmp_path: Path) -> None:
    walk = Walk()
    # The models route answers 201 only for official models; the sandbox has none, so this walk (the
    # one test that needs the route's success answer) turns on the lenient knob.
    config = fast_config(
        tmp_path,
        page_size=1,
        file_size_limit=64 * 1024,
        max_simulated_steps=100_000,
        models_route_official_only=False,
    )
    async with running(config) as (_, api):
        walk.check(await api.get("/v1/account"), "/account", 200)
        walk.check(await api.get("/v1/hardware"), "/hardware", 200)
        walk.check(await api.get("/v1/webhooks/default/secret"), "/webhooks/default/secret", 200)

        upload = {"content": ("dataset.zip", images_zip(), "application/zip")}
        file = walk.check(await api.post("/v1/files", files=upload), "/files", 201).json()
        too_big = {"content": ("big.zip", bytes(64 * 1024 + 1), "application/zip")}
        walk.check(await api.post("/v1/files", files=too_big), "/files", 413)
        walk.check(await api.get("/v1/files"), "/files", 200)
        walk.check(await api.get(f"/v1/files/{file['id']}"), "/files/{file_id}", 200)
        walk.check(await api.get("/v1/files/nope"), "/files/{file_id}", 404)
        signed = await api.post(f"/_sandbox/files/{file['id']}/download-url", json={})
        walk.check(await api.get(signed.json()["url"]), "/files/{file_id}/download", 200)
        walk.check(await api.get("/v1/files/nope/download"), "/files/{file_id}/download", 404)

        model_path = "/models/{model_owner}/{model_name}"
        model = walk.check(await api.get(f"/v1/models/{TRAINER}"), model_path, 200).json()
        walk.check(await api.get("/v1/models/sandbox/my-lora"), model_path, 200)
        versions = f"/v1/models/{TRAINER}/versions"
        page = walk.check(await api.get(versions), f"{model_path}/versions", 200).json()
        while page["next"]:  # page_size 1: every page of versions, through the opaque cursor
            page = walk.check(await api.get(page["next"]), f"{model_path}/versions", 200).json()
        version = model["latest_version"]["id"]
        one = await api.get(f"{versions}/{version}")
        walk.check(one, f"{model_path}/versions/{{version_id}}", 200)

        inputs = {"images": file["urls"]["get"], "config_json": trainer_config()}
        short = {**inputs, "max_train_steps": 3}
        long = {**inputs, "max_train_steps": 10**5}
        done = walk.check(
            await api.post("/v1/predictions", json={"version": version, "input": short}), "/predictions", 201
        ).json()
        named = {"version": f"{TRAINER}:{version}", "input": long}
        running_one = walk.check(await api.post("/v1/predictions", json=named), "/predictions", 201).json()
        via_model = await api.post(f"/v1/models/{TRAINER}/predictions", json={"input": {"config_json": "x"}})
        walk.check(via_model, f"{model_path}/predictions", 201)
        failed = await wait_until(api, f"/v1/predictions/{via_model.json()['id']}")
        assert failed["status"] == "failed"
        for prediction in (done, running_one, failed):
            await wait_until(api, prediction["urls"]["get"], ("processing", "succeeded", "failed"))
            walk.check(await api.get(prediction["urls"]["get"]), "/predictions/{prediction_id}", 200)
        await wait_until(api, done["urls"]["get"])
        canceled = await api.post(running_one["urls"]["cancel"])
        assert walk.check(canceled, "/predictions/{prediction_id}/cancel", 200).json()["status"] == "canceled"
        page = walk.check(await api.get("/v1/predictions"), "/predictions", 200).json()
        while page["next"]:
            page = walk.check(await api.get(page["next"]), "/predictions", 200).json()

        create = f"/v1/models/{TRAINER}/versions/{version}/trainings"
        training_path = f"{model_path}/versions/{{version_id}}/trainings"
        body = {"destination": "sandbox/my-lora", "input": short}
        trained = walk.check(await api.post(create, json=body), training_path, 201).json()
        body = {"destination": "sandbox/my-lora", "input": long}
        training = walk.check(await api.post(create, json=body), training_path, 201).json()
        await wait_until(api, f"/v1/trainings/{trained['id']}")
        await wait_until(api, f"/v1/trainings/{training['id']}", ("processing",))
        for job in (trained, training):
            walk.check(await api.get(f"/v1/trainings/{job['id']}"), "/trainings/{training_id}", 200)
            walk.check(await api.get(f"/v1/predictions/{job['id']}"), "/predictions/{prediction_id}", 200)
        canceled = await api.post(f"/v1/trainings/{training['id']}/cancel")
        assert walk.check(canceled, "/trainings/{training_id}/cancel", 200).json()["status"] == "canceled"
        page = walk.check(await api.get("/v1/trainings"), "/trainings", 200).json()
        while page["next"]:
            page = walk.check(await api.get(page["next"]), "/trainings", 200).json()

        walk.check(await api.delete(f"/v1/files/{file['id']}"), "/files/{file_id}", 204)
        walk.check(await api.delete(f"/v1/files/{file['id']}"), "/files/{file_id}", 404)
    assert walk.seen == EXPECTED


def test_webhook_bodies_are_get_representations() -> None:
    body = (
        b'{"id": "abc", "model": "a/b", "version": "' + b"0" * 64 + b'", "input": {}, "logs": "",'
        b' "output": null, "data_removed": false, "error": null, "status": "starting",'
        b' "created_at": "2026-01-01T00:00:00.000000Z", "urls": {"get": "http://x/v1/predictions/abc",'
        b' "cancel": "http://x/v1/predictions/abc/cancel", "web": "http://x/p/abc"}}'
    )
    assert_job_body(body)
    with pytest.raises(InvalidData):
        assert_job_body(body.replace(b'"starting"', b'"queued"'))
