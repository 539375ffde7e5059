"""The models the sandbox knows: the simulated trainer on two hardware profiles, each with two
versions, and a private destination model for trainings. Also `/v1/hardware` (section 7 SKUs)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request

from simpletuner_cloud.sandbox.clock import iso, parse_iso
from simpletuner_cloud.sandbox.pages import paginate
from simpletuner_cloud.sandbox.problems import NOT_FOUND, Problem
from simpletuner_cloud.sandbox.trainer_schema import (
    OLDER_VERSION_OMITS,
    lora_openapi_schema,
    trainer_openapi_schema,
)

HARDWARE: list[dict[str, str]] = [
    {"sku": "cpu", "name": "CPU"},
    {"sku": "gpu-t4", "name": "Nvidia T4 GPU"},
    {"sku": "gpu-a40-small", "name": "Nvidia A40 GPU"},
    {"sku": "gpu-a40-large", "name": "Nvidia A40 (Large) GPU"},
    {"sku": "gpu-l40s", "name": "Nvidia L40S GPU"},
    {"sku": "gpu-2x-l40s", "name": "2x Nvidia L40S GPU"},
    {"sku": "gpu-4x-l40s", "name": "4x Nvidia L40S GPU"},
    {"sku": "gpu-8x-l40s", "name": "8x Nvidia L40S GPU"},
    {"sku": "gpu-a100-large", "name": "Nvidia A100 (80GB) GPU"},
    {"sku": "gpu-a100-large-2x", "name": "2x Nvidia A100 (80GB) GPU"},
    {"sku": "gpu-a100-large-4x", "name": "4x Nvidia A100 (80GB) GPU"},
    {"sku": "gpu-a100-large-8x", "name": "8x Nvidia A100 (80GB) GPU"},
    {"sku": "gpu-h100", "name": "Nvidia H100 GPU"},
    {"sku": "gpu-h100-2x", "name": "2x Nvidia H100 GPU"},
    {"sku": "gpu-h100-4x", "name": "4x Nvidia H100 GPU"},
    {"sku": "gpu-h100-8x", "name": "8x Nvidia H100 GPU"},
]


def version_id(model: str, label: str) -> str:
    """Stable 64-hex ids, so a version pinned in a config survives a sandbox restart."""
    return hashlib.sha256(f"simpletuner-cloud sandbox {model} {label}".encode()).hexdigest()


@dataclass
class Version:
    id: str
    created_at: float
    cog_version: str
    openapi_schema: dict[str, Any]
    trainable: bool = False


@dataclass
class Model:
    owner: str
    name: str
    description: str
    hardware: str
    visibility: str = "public"
    is_official: bool = False
    run_count: int = 0
    versions: list[Version] = field(default_factory=list)  # newest first

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}"

    def version(self, vid: str) -> Version | None:
        return next((v for v in self.versions if v.id == vid), None)


class Catalogue:
    def __init__(self, account: str) -> None:
        older = parse_iso("2026-05-02T09:14:03.221Z") or 0.0
        newer = parse_iso("2026-08-22T17:40:51.907Z") or 0.0
        self.models: dict[str, Model] = {}
        for name, sku, profile in (
            ("advanced-trainer", "gpu-l40s", "L40S"),
            ("advanced-trainer-a100", "gpu-a100-large", "A100 80GB"),
        ):
            ref = f"simpletuner/{name}"
            self.add(
                Model(
                    owner="simpletuner",
                    name=name,
                    description=f"SimpleTuner LoRA trainer ({profile}). Sandbox simulation.",
                    hardware=sku,
                    run_count=1234,
                    versions=[
                        Version(version_id(ref, "v2"), newer, "0.16.2", trainer_openapi_schema(), True),
                        Version(
                            version_id(ref, "v1"),
                            older,
                            "0.14.3",
                            trainer_openapi_schema(OLDER_VERSION_OMITS),
                            True,
                        ),
                    ],
                )
            )
        self.add(
            Model(account, "my-lora", "Destination for sandbox trainings.", "gpu-l40s", visibility="private")
        )

    def add(self, model: Model) -> None:
        self.models[model.ref] = model

    def get(self, ref: str) -> Model | None:
        return self.models.get(ref)

    def find_version(self, vid: str) -> tuple[Model, Version] | None:
        for model in self.models.values():
            version = model.version(vid)
            if version is not None:
                return model, version
        return None

    def add_trained_version(self, destination: Model, created_at: float) -> Version:
        label = f"trained-{len(destination.versions) + 1}-{created_at}"
        version = Version(version_id(destination.ref, label), created_at, "0.16.2", lora_openapi_schema())
        destination.versions.insert(0, version)
        return version


def version_json(version: Version) -> dict[str, Any]:
    return {
        "id": version.id,
        "created_at": iso(version.created_at),
        "cog_version": version.cog_version,
        "openapi_schema": version.openapi_schema,
    }


def model_json(model: Model, base_url: str) -> dict[str, Any]:
    latest = model.versions[0] if model.versions else None
    return {
        "url": f"{base_url}/{model.owner}/{model.name}",
        "owner": model.owner,
        "name": model.name,
        "description": model.description,
        "visibility": model.visibility,
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "cover_image_url": None,
        "run_count": model.run_count,
        "is_official": model.is_official,
        "default_example": None,
        "latest_version": version_json(latest) if latest else None,
    }


router = APIRouter()


def _model(request: Request, owner: str, name: str) -> Model:
    model = request.app.state.sandbox.catalogue.get(f"{owner}/{name}")
    if model is None:
        raise Problem(404, NOT_FOUND)
    return model


@router.get("/v1/models/{owner}/{name}")
async def get_model(request: Request, owner: str, name: str) -> dict[str, Any]:
    return model_json(_model(request, owner, name), request.app.state.sandbox.config.base_url)


@router.get("/v1/models/{owner}/{name}/versions")
async def list_versions(request: Request, owner: str, name: str) -> dict[str, Any]:
    model = _model(request, owner, name)
    sandbox = request.app.state.sandbox
    numbered = list(enumerate(reversed(model.versions)))[::-1]  # (position, version), newest first
    return paginate(
        numbered,
        seq_of=lambda item: item[0],
        render=lambda item: version_json(item[1]),
        url=f"{sandbox.config.base_url}/v1/models/{owner}/{name}/versions",
        query=dict(request.query_params),
        page_size=sandbox.config.page_size,
    )


@router.get("/v1/models/{owner}/{name}/versions/{vid}")
async def get_version(request: Request, owner: str, name: str, vid: str) -> dict[str, Any]:
    version = _model(request, owner, name).version(vid)
    if version is None:
        raise Problem(404, NOT_FOUND)
    return version_json(version)


@router.get("/v1/hardware")
async def list_hardware() -> list[dict[str, str]]:
    return HARDWARE
