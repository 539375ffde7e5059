"""Delivery plans at submit: which destination a job gets, the trainer inputs and Secret inputs of
each, the config fixes S3 publishing needs (and the refusals when it cannot be fixed), and the
ledger rows planned."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.delivery_plan import DeliveryRequest, PlannedDelivery, plan_delivery
from simpletuner_cloud.services.publishing import (
    HubPublishing,
    Publishing,
    PublishingSettings,
    S3Publishing,
)
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.storage.keys import credentials_for

GOOD = {"max_train_steps": 1000, "validation_prompt": "a photo", "checkpoint_step_interval": 250,
        "validation_step_interval": 250, "checkpoints_total_limit": 2}  # fmt: skip


def config(**options: Any) -> TrainingConfig:
    return TrainingConfig(options={"model_family": "flux", **options}, datasets=[])


def publishing(**changes: Any) -> Publishing:
    base = Publishing(
        settings=PublishingSettings(),
        hf_token="hf_token",
        hf_token_source="env",
        hf_token_saved=False,
        s3_access_key=None,
        s3_secret_key=None,
        public_url=None,
        hub_endpoint="https://huggingface.co",
    )
    return replace(base, **changes)


def request(delivery: Any, **fields: Any) -> DeliveryRequest:
    fields.setdefault("hub_model_id", None)
    fields.setdefault("job_id", "job_0123456789abcdefghjk")
    fields.setdefault("settings", load_settings())
    return DeliveryRequest(delivery, **fields)


def test_without_publishing_settings_the_hub_needs_hf_token_from_the_environment() -> None:
    plan = plan_delivery(DeliveryRequest("hub", "ana/lora"), config(), {"HF_TOKEN": "hf_env"})
    assert (plan.delivery, plan.inputs, plan.secrets, plan.config_overrides) == (
        "hub",
        {"hub_model_id": "ana/lora"},
        {"hf_token": "hf_env"},
        {},
    )
    assert plan.deliveries == [PlannedDelivery("hub", {"repo_id": "ana/lora", "private": None})]
    with pytest.raises(CloudError) as missing:
        plan_delivery(DeliveryRequest("hub", "ana/lora"), config(), {})
    assert missing.value.code == "hf_token_missing"


def test_no_destination_is_refused_unless_none_is_said() -> None:
    with pytest.raises(CloudError) as refused:
        plan_delivery(request(None, publishing=publishing()), config())
    assert refused.value.code == "delivery_required"
    none = plan_delivery(request("none", publishing=publishing()), config())
    assert none.delivery == "none" and none.deliveries == [] and none.secrets == {"hf_token": "hf_token"}
    assert none.warnings == [
        'Delivery "none": the trained weights stay on Replicate\'s machine and are lost when it stops.'
    ]


def test_the_default_comes_from_publishing() -> None:
    push = publishing(settings=PublishingSettings(hub=HubPublishing(push_to_hub=True, hub_model_id="ana/x")))
    plan = plan_delivery(request(None, publishing=push), config())
    assert plan.delivery == "hub" and plan.inputs == {"hub_model_id": "ana/x"}
    assert plan.config_overrides == {"model_card_private": True}  # private by default
    s3 = publishing(
        settings=PublishingSettings(default_delivery="s3", s3=S3Publishing(bucket="my-loras")),
        s3_access_key="AK",
        s3_secret_key="SK",
    )
    assert plan_delivery(request(None, publishing=s3), config(**GOOD)).delivery == "s3"


def test_s3_sends_bucket_region_endpoint_and_a_prefix_of_its_own() -> None:
    settings = PublishingSettings(
        s3=S3Publishing(
            bucket="my-loras", region="eu-west-1", endpoint_url="https://s3.example.com", prefix="loras"
        )
    )
    plan = plan_delivery(
        request("s3", publishing=publishing(settings=settings, s3_access_key="AK", s3_secret_key="SK")),
        config(**GOOD),
    )
    assert plan.inputs == {
        "s3_bucket": "my-loras",
        "s3_region": "eu-west-1",
        "s3_base_path": "loras/job_0123456789abcdefghjk",
        "s3_endpoint_url": "https://s3.example.com",
    }
    assert plan.secrets == {"hf_token": "hf_token", "s3_access_key": "AK", "s3_secret_key": "SK"}
    assert plan.config_overrides == {} and plan.warnings == []
    assert plan.deliveries == [
        PlannedDelivery(
            "s3",
            {
                "bucket": "my-loras",
                "region": "eu-west-1",
                "prefix": "loras/job_0123456789abcdefghjk",
                "endpoint_url": "https://s3.example.com",
                "public_base_url": None,
            },
        )
    ]


def test_s3_without_a_bucket_or_keys_is_refused() -> None:
    with pytest.raises(CloudError) as bucket:
        plan_delivery(request("s3", publishing=publishing()), config(**GOOD))
    assert bucket.value.code == "s3_not_configured"
    keyless = publishing(settings=PublishingSettings(s3=S3Publishing(bucket="b-1")))
    with pytest.raises(CloudError) as keys:
        plan_delivery(request("s3", publishing=keyless), config(**GOOD))
    assert keys.value.code == "s3_keys_missing"


def test_local_gets_its_own_keys_and_the_storage_endpoint(state_root: Path) -> None:
    settings = load_settings(sandbox=True)
    plan = plan_delivery(
        request("local", publishing=publishing(public_url="http://127.0.0.1:8080"), settings=settings),
        config(**GOOD),
    )
    access, secret = credentials_for(SecretStore.of(settings), "job_0123456789abcdefghjk")
    assert plan.inputs == {
        "s3_bucket": "cloud-outputs",
        "s3_region": "us-east-1",
        "s3_endpoint_url": "http://127.0.0.1:8080/api/cloud/storage",
        "s3_base_path": "job_0123456789abcdefghjk",
    }
    assert plan.secrets == {"hf_token": "hf_token", "s3_access_key": access, "s3_secret_key": secret}
    assert access == "STJ0123456789ABCDEFGHJK" and len(secret) == 40
    folder = str(state_root / "cloud_outputs" / "job_0123456789abcdefghjk")
    assert plan.deliveries == [
        PlannedDelivery(
            "local", {"bucket": "cloud-outputs", "prefix": "job_0123456789abcdefghjk", "folder": folder}
        )
    ]


def test_local_without_a_reachable_public_url_is_refused_with_the_tunnel_commands() -> None:
    with pytest.raises(CloudError) as missing:
        plan_delivery(request("local", publishing=publishing()), config(**GOOD))
    assert missing.value.code == "public_url_missing"
    assert "`ngrok http 8080`" in missing.value.hint
    assert "`cloudflared tunnel --url http://localhost:8080`" in missing.value.hint
    with pytest.raises(CloudError) as loopback:  # a real Replicate cannot upload to this machine's loopback
        plan_delivery(
            request("local", publishing=publishing(public_url="http://127.0.0.1:8080")), config(**GOOD)
        )
    assert loopback.value.message == (
        "The public URL http://127.0.0.1:8080 reaches this machine only; Replicate's trainer cannot upload "
        "to it."
    )


def test_the_hub_goes_beside_s3_when_push_to_hub_is_on_or_a_repo_is_sent() -> None:
    settings = PublishingSettings(
        s3=S3Publishing(bucket="my-loras"),
        hub=HubPublishing(push_to_hub=True, hub_model_id="ana/x", private=False),
    )
    plan = plan_delivery(
        request("s3", publishing=publishing(settings=settings, s3_access_key="AK", s3_secret_key="SK")),
        config(**GOOD),
    )
    assert [d.destination for d in plan.deliveries] == ["s3", "hub"]
    assert plan.inputs["hub_model_id"] == "ana/x" and plan.config_overrides == {"model_card_private": False}
    sent = plan_delivery(
        request(
            "s3",
            hub_model_id="ana/other",
            hub_private=True,
            publishing=publishing(
                settings=PublishingSettings(s3=S3Publishing(bucket="my-loras")),
                s3_access_key="A",
                s3_secret_key="S",
            ),
        ),
        config(**GOOD),
    )
    assert sent.inputs["hub_model_id"] == "ana/other" and sent.config_overrides == {
        "model_card_private": True
    }


def s3_plan(**options: Any) -> Any:
    s3 = publishing(
        settings=PublishingSettings(s3=S3Publishing(bucket="my-loras")), s3_access_key="A", s3_secret_key="S"
    )
    return plan_delivery(request("s3", publishing=s3), config(**options))


def test_intervals_that_miss_the_last_step_are_fixed_and_named() -> None:
    plan = s3_plan(max_train_steps=1000, validation_prompt="p", checkpoint_step_interval=300,
                   validation_step_interval=333, checkpoints_total_limit=5)  # fmt: skip
    assert plan.config_overrides == {
        "checkpoint_step_interval": 250,
        "validation_step_interval": 250,
        "checkpoints_total_limit": 2,
    }
    assert plan.warnings == [
        "Changed for s3 (the trainer uploads its folder only after a validation run): "
        "checkpoint_step_interval 300 -> 250 (it must divide max_train_steps 1000); "
        "validation_step_interval 333 -> 250 (it must divide max_train_steps 1000); "
        "checkpoints_total_limit 5 -> 2 (every upload re-sends each checkpoint kept)."
    ]


def test_unset_intervals_get_a_quarter_of_the_steps_and_legacy_names_stay_legacy() -> None:
    unset = s3_plan(max_train_steps=97, validation_prompt="p")  # a prime: only 1 and 97 divide it
    assert unset.config_overrides == {
        "checkpoint_step_interval": 1,
        "validation_step_interval": 1,
        "checkpoints_total_limit": 2,
    }
    legacy = s3_plan(max_train_steps=600, validation_prompt="p", checkpointing_steps=250,
                     validation_steps=200, checkpoints_total_limit=1)  # fmt: skip
    assert legacy.config_overrides == {"checkpointing_steps": 200}


def test_the_steps_sent_with_the_job_count() -> None:
    s3 = publishing(
        settings=PublishingSettings(s3=S3Publishing(bucket="my-loras")), s3_access_key="A", s3_secret_key="S"
    )
    plan = plan_delivery(request("s3", publishing=s3, max_train_steps=300), config(**GOOD))
    assert plan.config_overrides == {"checkpoint_step_interval": 150, "validation_step_interval": 150}


@pytest.mark.parametrize(
    ("options", "start"),
    [
        ({"max_train_steps": 100}, "S3 needs validation"),
        ({"max_train_steps": 100, "validation_prompt": "  "}, "S3 needs validation"),
        (
            {"max_train_steps": 100, "validation_prompt": "p", "validation_disable": "true"},
            "S3 needs validation",
        ),
        ({"validation_prompt": "p", "num_train_epochs": 3}, "S3 needs max_train_steps"),
    ],
)
def test_what_cannot_be_fixed_is_refused(options: dict[str, Any], start: str) -> None:
    with pytest.raises(CloudError) as refused:
        s3_plan(**options)
    assert refused.value.code == "delivery_needs_validation" and refused.value.message.startswith(start)
