"""Answer shapes of the dataset use cases (`datasets.py`): the configs list, one config, and the
data-consent preview. The services return them; the routes use them as response models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ConfigSummaryResponse(BaseModel):
    name: str
    path: str
    model_family: str | None
    model_type: str | None
    description: str | None
    datasets: int
    problems: list[str]


class ConfigListResponse(BaseModel):
    configs_dir: str
    configs: list[ConfigSummaryResponse]


class ConfigResponse(BaseModel):
    name: str | None
    source: str
    config_path: str | None
    dataloader_path: str | None
    config: dict[str, Any]
    datasets: list[dict[str, Any]]
    lycoris: dict[str, Any] | None
    problems: list[str]


class SkippedFileResponse(BaseModel):
    path: str
    reason: str
    explanation: str


class ArchiveFileResponse(BaseModel):
    path: str = Field(description="The file, relative to its dataset folder.")
    archive_name: str = Field(description="Its name inside the archive.")


class CaptionChangeDetail(BaseModel):
    code: Literal["first_line", "replaced", "spaces", "underscore", "cut"]
    explanation: str


class CaptionChangeResponse(BaseModel):
    path: str
    archive_name: str
    caption: str = Field(description="The first line of its caption file, as written.")
    trainer_caption: str = Field(description="The caption the trainer derives from the archive name.")
    changes: list[CaptionChangeDetail]


class DatasetPreviewResponse(BaseModel):
    id: str
    action: Literal["upload", "remote", "skip", "refuse"]
    reason: str
    folder: str | None = None
    files: int | None = None
    images: int | None = None
    bytes: int | None = None
    skipped: list[SkippedFileResponse] = Field([], description="The first 50 skipped files.")
    skipped_count: int | None = None
    skipped_reasons: dict[str, int] = Field({}, description="How many files were skipped for each reason.")
    archive_files: list[ArchiveFileResponse] = []
    caption_changes: list[CaptionChangeResponse] = []


class ErrorDetailResponse(BaseModel):
    code: str
    message: str
    hint: str
    details: dict[str, Any] | None = None


class DataConsentPreviewResponse(BaseModel):
    config: str | None
    mode: Literal["upload", "remote"]
    needs_upload: bool
    rename_to_captions: bool
    datasets: list[DatasetPreviewResponse]
    archive_bytes: int
    limit_bytes: int
    within_limit: bool
    error: ErrorDetailResponse | None
    warnings: list[str]
    problems: list[str]
