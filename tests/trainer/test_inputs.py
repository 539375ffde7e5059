"""Job -> trainer inputs, per trainer-contract §1.1 and §2.6."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.plan import plan_datasets
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.trainer.inputs import (
    HubDestination,
    JobSpec,
    S3Destination,
    build_trainer_inputs,
    dataset_inputs,
)
from simpletuner_cloud.trainer.schema import check_trainer_inputs
from tests.datasets.factory import local_entry, write_environment

URL = "https://api.replicate.com/v1/files/abc"
HUB = HubDestination("me/my-lora", "hf_secret_token_value")
S3 = S3Destination("bucket", "us-east-1", "AKIA_ACCESS", "s3-secret-value", "http://127.0.0.1:9000", "runs")
HF_SET = {"id": "hub", "type": "huggingface", "dataset_name": "me/set", "cache_dir_vae": "/home/me/cache/vae"}
TEXT = {"id": "text", "dataset_type": "text_embeds", "default": True, "cache_dir": "/home/me/cache/text"}


def spec_for(tmp_path: Path, datasets: list[dict[str, Any]] | None = None, **kwargs: Any) -> JobSpec:
    options = kwargs.pop("options", {})
    write_environment(tmp_path, "env", datasets=datasets, options=options)
    config = load_environment("env", tmp_path)
    defaults: dict[str, Any] = {"destination": HUB, "archive_url": URL}
    return JobSpec(config, plan_datasets(config), **{**defaults, **kwargs})


def test_upload_mode_sends_images_and_a_cleaned_config(tmp_path: Path) -> None:
    options = {
        "output_dir": "/home/me/out", "publishing_config": [{"provider": "s3"}],
        "webhook_config": {"url": "x"},
        "report_to": "wandb", "hub_token": "hf_leak", "wandb_api_key": "leak", "push_to_hub": True,
        "num_train_epochs": 10, "resolution": 512, "tokenizer_max_length": 512,
    }  # fmt: skip
    inputs = build_trainer_inputs(spec_for(tmp_path, [local_entry(resolution=768)], options=options))
    assert set(inputs) == {"config_json", "images", "hub_model_id", "hf_token"}
    assert inputs["images"] == URL
    config = json.loads(inputs["config_json"])
    for key in ("output_dir", "data_backend_config", "publishing_config", "webhook_config", "hub_token",
                "wandb_api_key", "push_to_hub"):  # fmt: skip
        assert key not in config
    assert config["report_to"] == "none"
    assert config["tokenizer_max_length"] == 512  # a token-like word inside a longer name is not a secret
    assert config["num_train_epochs"] == 0  # max_train_steps drives the run
    assert (config["resolution"], config["resolution_type"]) == (768, "pixel_area")
    assert "leak" not in inputs["config_json"] and "hf_secret" not in inputs["config_json"]


def test_remote_mode_sends_only_remote_entries_with_relative_caches(tmp_path: Path) -> None:
    disabled = {**HF_SET, "id": "off", "disabled": True}
    inputs = build_trainer_inputs(spec_for(tmp_path, [HF_SET, TEXT, disabled], archive_url=None))
    assert "images" not in inputs
    entries = json.loads(inputs["dataloader_json"])
    assert [e["id"] for e in entries] == ["hub", "text"]
    assert entries[0]["cache_dir_vae"] == "cache/vae/{model_family}/hub"
    assert entries[1]["cache_dir"] == "cache/text/{model_family}/text"


def test_steps_override_and_lycoris_inline(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, options={"lora_type": "lycoris", "max_train_steps": 0}, max_train_steps=250)
    with pytest.raises(CloudError) as caught:
        build_trainer_inputs(spec)
    assert caught.value.code == "config_invalid"
    (tmp_path / "env" / "lycoris_config.json").write_text('{"algo": "lokr"}')
    spec = spec_for(tmp_path, options={"lora_type": "lycoris", "max_train_steps": 0}, max_train_steps=250)
    inputs = build_trainer_inputs(spec)
    assert inputs["max_train_steps"] == 250
    assert json.loads(inputs["lycoris_config"]) == {"algo": "lokr"}
    assert "lycoris_config" not in json.loads(inputs["config_json"])


def test_s3_destination_keys_only_travel_as_secret_inputs(tmp_path: Path) -> None:
    inputs = build_trainer_inputs(spec_for(tmp_path, destination=S3, hf_token="hf_gated"))
    assert {k: v for k, v in inputs.items() if k.startswith("s3_")} == {
        "s3_bucket": "bucket", "s3_region": "us-east-1", "s3_access_key": "AKIA_ACCESS",
        "s3_secret_key": "s3-secret-value", "s3_endpoint_url": "http://127.0.0.1:9000",
        "s3_base_path": "runs",
    }  # fmt: skip
    assert inputs["hf_token"] == "hf_gated"
    assert "hub_model_id" not in inputs
    assert "s3-secret-value" not in inputs["config_json"]


def test_empty_values_are_left_out_and_a_destination_is_required(tmp_path: Path) -> None:
    inputs = build_trainer_inputs(spec_for(tmp_path, destination=S3Destination("bucket", "auto")))
    assert "hf_token" not in inputs and "s3_access_key" not in inputs
    assert all(value not in ("", "{}", "[]", None) for value in inputs.values())
    with pytest.raises(CloudError) as caught:
        build_trainer_inputs(spec_for(tmp_path, destination=None))
    assert caught.value.code == "trainer_input_invalid"


def test_upload_mode_needs_the_archive_url(tmp_path: Path) -> None:
    with pytest.raises(CloudError):
        build_trainer_inputs(spec_for(tmp_path, archive_url=None))


def test_the_inputs_validate_against_the_sandbox_trainer_schema(tmp_path: Path) -> None:
    sandbox_schema = pytest.importorskip("simpletuner_cloud.sandbox.trainer_schema")
    check_trainer_inputs(build_trainer_inputs(spec_for(tmp_path)), sandbox_schema.trainer_openapi_schema())


def test_dataset_inputs_carry_no_destination_and_no_secret(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, destination=None, hf_token="hf_gated", options={"hub_token": "hf_leak"})
    inputs = dataset_inputs(spec)
    assert set(inputs) == {"config_json", "images"}
    assert "hf_" not in json.dumps(inputs)


def test_a_remote_job_never_sends_a_folder_of_this_disk(tmp_path: Path) -> None:
    cache = {**TEXT, "type": "local", "instance_data_dir": "/home/me/pictures"}
    with pytest.raises(CloudError) as caught:
        build_trainer_inputs(spec_for(tmp_path, [HF_SET, cache], archive_url=None))
    assert caught.value.code == "dataset_unsupported"
    assert "`text`" in caught.value.message
