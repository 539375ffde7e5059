"""`POST /api/cloud/data-consent/preview`: what a job would upload (per dataset: every archive entry
and the file it comes from, captions that change, bytes, skipped files with reasons) and the archive
size against Replicate's limit, before the user consents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from simpletuner_cloud.api.deps import SettingsDep
from simpletuner_cloud.services import datasets
from simpletuner_cloud.services.dataset_views import DataConsentPreviewResponse

router = APIRouter(tags=["data"])


class DataConsentPreviewRequest(BaseModel):
    config: str | None = Field(
        None, max_length=4096, description="Environment name, or a path to a folder or config.json."
    )
    config_json: dict[str, Any] | None = Field(None, description="Inline config.json.")
    dataloader_json: list[dict[str, Any]] | dict[str, Any] | None = Field(
        None, description="Inline multidatabackend.json."
    )
    merge_local_datasets: bool = Field(
        False,
        description="Agree to merge several compatible local datasets (same resolution) into one set, "
        "losing per-set repeats, size filters, crops and caption strategy differences. Without it, "
        "several local datasets are refused (`dataset_unsupported`).",
    )
    rename_to_captions: bool = Field(
        False,
        description="Agree to name each image of a `textfile` dataset after its caption inside the archive "
        "(the files on disk keep their names), since the trainer captions uploads by file name. Without "
        "it, textfile captions that differ from the file names are refused (`dataset_unsupported`).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConsentPreviewRequest:
        inline = self.config_json is not None or self.dataloader_json is not None
        if bool(self.config) == inline:
            raise ValueError("give either `config` or both `config_json` and `dataloader_json`")
        if inline and (self.config_json is None or self.dataloader_json is None):
            raise ValueError("inline configs need both `config_json` and `dataloader_json`")
        return self


@router.post("/data-consent/preview", response_model=DataConsentPreviewResponse)
def preview_data_consent(
    body: DataConsentPreviewRequest, settings: SettingsDep
) -> DataConsentPreviewResponse:
    return datasets.preview_data_consent(
        settings,
        body.config,
        body.config_json,
        body.dataloader_json,
        merge_local=body.merge_local_datasets,
        rename_to_captions=body.rename_to_captions,
    )
