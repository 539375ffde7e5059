"""Trainer inputs against a version's openapi_schema: unknown, wrong type, enum, required."""

from __future__ import annotations

from typing import Any

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.trainer.schema import check_trainer_inputs, input_schema

SCHEMA: dict[str, Any] = {
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "required": ["config_json"],
                "properties": {
                    "config_json": {"type": "string"},
                    "images": {"type": "string", "format": "uri"},
                    "max_train_steps": {"type": "integer", "minimum": 1},
                    "return_logs": {"type": "boolean", "default": True},
                    "hf_token": {"type": "string", "format": "password", "x-cog-secret": True},
                    "precision": {"allOf": [{"$ref": "#/components/schemas/precision"}], "default": "bf16"},
                },
            },
            "precision": {"title": "precision", "enum": ["bf16", "fp16"], "type": "string"},
        }
    }
}


def error_for(inputs: dict[str, Any]) -> CloudError:
    with pytest.raises(CloudError) as caught:
        check_trainer_inputs(inputs, SCHEMA)
    return caught.value


def test_declared_inputs_of_the_right_type_pass() -> None:
    inputs = {"config_json": "{}", "images": "https://x/y.zip", "max_train_steps": 5, "return_logs": False,
              "hf_token": "hf_x", "precision": "fp16"}  # fmt: skip
    check_trainer_inputs(inputs, SCHEMA)
    check_trainer_inputs({"config_json": "{}", "images": None}, SCHEMA)  # None is an absent input


def test_an_undeclared_input_is_named() -> None:
    error = error_for({"config_json": "{}", "lycoris_config": "{}", "webhook_config": "{}"})
    assert error.code == "trainer_input_unknown"
    assert "`lycoris_config`" in error.message and "`webhook_config`" in error.message
    assert error.details == {"unknown": ["lycoris_config", "webhook_config"]}


@pytest.mark.parametrize(
    ("inputs", "name"),
    [
        ({"config_json": 5}, "config_json"),
        ({"config_json": "{}", "max_train_steps": "100"}, "max_train_steps"),
        ({"config_json": "{}", "max_train_steps": True}, "max_train_steps"),
        ({"config_json": "{}", "max_train_steps": 0}, "max_train_steps"),
        ({"config_json": "{}", "return_logs": "yes"}, "return_logs"),
        ({"config_json": "{}", "precision": "fp8"}, "precision"),
        ({"images": "https://x"}, "config_json"),
    ],
)
def test_a_wrong_value_is_named(inputs: dict[str, Any], name: str) -> None:
    error = error_for(inputs)
    assert error.code == "trainer_input_invalid"
    assert f"`{name}`" in error.message


def test_a_version_without_an_input_schema_is_refused() -> None:
    with pytest.raises(CloudError) as caught:
        input_schema({"components": {"schemas": {}}})
    assert caught.value.code == "trainer_input_invalid"
