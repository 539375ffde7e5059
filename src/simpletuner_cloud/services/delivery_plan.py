"""Where a job's trained model goes, decided at submit: the trainer's destination inputs (never a
secret in `config_json`: secrets travel only as Secret inputs), the secrets the job needs until it
ends (kept in the secret store), changes the destination needs in the config (S3 publishing needs a
validation run), and warnings. Refuses a job whose weights would be lost without the user saying so."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from simpletuner_cloud.datasets.configs import TrainingConfig
from simpletuner_cloud.errors import CloudError

Delivery = Literal["hub", "s3", "local", "none"]
NONE_WARNING = 'Delivery "none": the trained weights stay on Replicate\'s machine and are lost when it stops.'


@dataclass(frozen=True)
class DeliveryRequest:
    delivery: Delivery | None
    hub_model_id: str | None


@dataclass(frozen=True)
class DeliveryPlan:
    delivery: Delivery
    inputs: dict[str, Any] = field(default_factory=dict)  # non-secret trainer inputs of the destination
    secrets: dict[str, str] = field(default_factory=dict)  # Secret inputs (hf_token, s3 keys)
    config_overrides: dict[str, Any] = field(default_factory=dict)  # applied to config_json
    warnings: list[str] = field(default_factory=list)

    def checked_inputs(self) -> dict[str, Any]:
        """The input names the trainer version must declare (secret values stand in as "x")."""
        return {**self.inputs, **dict.fromkeys(self.secrets, "x")}


def plan_delivery(
    request: DeliveryRequest, config: TrainingConfig, environ: Mapping[str, str] | None = None
) -> DeliveryPlan:
    env = os.environ if environ is None else environ
    hf_token = (env.get("HF_TOKEN") or "").strip()
    # Sent whenever it is set: gated base models (FLUX.1-dev) need it even without a Hub push.
    secrets = {"hf_token": hf_token} if hf_token else {}
    delivery = request.delivery or ("hub" if request.hub_model_id else None)
    if delivery is None:
        raise CloudError(
            "The job has no destination for the trained model; the trainer would discard the weights.",
            code="delivery_required",
            hint='Choose where the weights go: "delivery": "hub" with a hub_model_id (and HF_TOKEN set), or '
            '"delivery": "none" to train without keeping them.',
        )
    if delivery == "hub":
        if not request.hub_model_id or request.hub_model_id.count("/") != 1:
            raise CloudError(
                "Push to Hub needs hub_model_id as `username/repo-name`.",
                code="validation_error",
                hint="For example `username/my-lora`.",
            )
        if not hf_token:
            raise CloudError(
                "Push to Hub needs a Hugging Face token, and HF_TOKEN is not set.",
                code="hf_token_missing",
                hint='Export it: export HF_TOKEN="hf_..." and restart simpletuner server.',
            )
        return DeliveryPlan("hub", {"hub_model_id": request.hub_model_id}, secrets)
    if delivery in ("s3", "local"):
        raise CloudError(
            f"Delivery `{delivery}` is not available in this version yet.",
            code="delivery_unavailable",
            hint='Use "delivery": "hub" (Hugging Face) for now.',
        )
    return DeliveryPlan("none", {}, secrets, warnings=[NONE_WARNING])
