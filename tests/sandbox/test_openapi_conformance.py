"""Every sandbox JSON response the project uses validates against Replicate's own response schemas."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from jsonschema import ValidationError

from tests.sandbox.conftest import TRAINER, create, latest_version, trainer_input, upload, wait_until
from tests.sandbox.openapi_spec import SPEC_PATH, validate_response


def test_vendored_spec_is_identical_to_the_shared_reference() -> None:
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "replicate-openapi.json"
    if not shared.exists():
        pytest.skip("no ../shared/reference next to this checkout")
    assert SPEC_PATH.read_bytes() == shared.read_bytes()


def test_the_validator_rejects_a_bad_body() -> None:
    with pytest.raises(ValidationError):
        validate_response({"id": "x", "status": "nonsense"}, "/predictions/{prediction_id}", "get")


async def test_account_hardware_secret(api: httpx.AsyncClient) -> None:
    validate_response((await api.get("/v1/account")).json(), "/account", "get")
    validate_response((await api.get("/v1/hardware")).json(), "/hardware", "get")
    validate_response(
        (await api.get("/v1/webhooks/default/secret")).json(), "/webhooks/default/secret", "get"
    )


async def test_files(api: httpx.AsyncClient) -> None:
    created = await upload(api)
    validate_response(created, "/files", "post", 201)
    validate_response((await api.get(f"/v1/files/{created['id']}")).json(), "/files/{file_id}", "get")
    validate_response((await api.get("/v1/files")).json(), "/files", "get")


async def test_models_and_versions(api: httpx.AsyncClient) -> None:
    for model in (TRAINER, "simpletuner/advanced-trainer-a100", "sandbox/my-lora"):
        validate_response(
            (await api.get(f"/v1/models/{model}")).json(), "/models/{model_owner}/{model_name}", "get"
        )
    versions = (await api.get(f"/v1/models/{TRAINER}/versions")).json()
    validate_response(versions, "/models/{model_owner}/{model_name}/versions", "get")
    one = (await api.get(f"/v1/models/{TRAINER}/versions/{versions['results'][0]['id']}")).json()
    validate_response(one, "/models/{model_owner}/{model_name}/versions/{version_id}", "get")


async def test_predictions_through_their_lifecycle(api: httpx.AsyncClient) -> None:
    inputs = await trainer_input(api)
    created = await create(api, inputs)
    validate_response(created, "/predictions", "post", 201)
    by_model = await api.post(f"/v1/models/{TRAINER}/predictions", json={"input": inputs})
    validate_response(by_model.json(), "/models/{model_owner}/{model_name}/predictions", "post", 201)
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    validate_response(done, "/predictions/{prediction_id}", "get")
    canceled = await api.post(f"/v1/predictions/{by_model.json()['id']}/cancel")
    validate_response(canceled.json(), "/predictions/{prediction_id}/cancel", "post")
    validate_response((await api.get("/v1/predictions")).json(), "/predictions", "get")
    failing = await create(api, {**inputs, "config_json": "{not json"})
    validate_response(
        await wait_until(api, f"/v1/predictions/{failing['id']}"), "/predictions/{prediction_id}", "get"
    )


async def test_trainings(api: httpx.AsyncClient) -> None:
    version = await latest_version(api)
    inputs = await trainer_input(api)
    created = await api.post(
        f"/v1/models/{TRAINER}/versions/{version}/trainings",
        json={"destination": "sandbox/my-lora", "input": inputs},
    )
    path = "/models/{model_owner}/{model_name}/versions/{version_id}/trainings"
    validate_response(created.json(), path, "post", 201)
    done = await wait_until(api, f"/v1/trainings/{created.json()['id']}")
    validate_response(done, "/trainings/{training_id}", "get")
    validate_response((await api.get("/v1/trainings")).json(), "/trainings", "get")
    canceled = await api.post(f"/v1/trainings/{created.json()['id']}/cancel")
    validate_response(canceled.json(), "/trainings/{training_id}/cancel", "post")
    json.dumps(done)  # plain JSON all the way down
