"""The dataset plan: every row of trainer-contract §2.7, and the skip/upload/remote sorting of §3.3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.plan import WHAT_WORKS, DatasetPlan, classify, plan_datasets
from simpletuner_cloud.errors import CloudError
from tests.datasets.factory import local_entry, write_environment, write_images

HF = {"id": "hub", "type": "huggingface", "dataset_name": "me/plushies", "caption_strategy": "huggingface"}
TEXT_EMBEDS = {
    "id": "text",
    "type": "local",
    "dataset_type": "text_embeds",
    "default": True,
    "cache_dir": "/abs",
}


def plan_for(tmp_path: Path, datasets: list[dict[str, Any]], **kwargs: Any) -> DatasetPlan:
    write_environment(tmp_path, "env", datasets=datasets)
    return plan_datasets(load_environment("env", tmp_path), **kwargs)


def refusal(tmp_path: Path, datasets: list[dict[str, Any]]) -> CloudError:
    with pytest.raises(CloudError) as caught:
        plan_for(tmp_path, datasets)
    assert caught.value.code == "dataset_unsupported"
    assert "huggingface" in caught.value.hint  # says what would work
    return caught.value


def test_one_local_filename_set_is_uploaded(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, [local_entry(), TEXT_EMBEDS])
    assert plan.mode == "upload" and plan.needs_upload
    assert [(d.id, d.action) for d in plan.datasets] == [("plushie", "upload"), ("text", "skip")]
    assert plan.uploads[0].folder == tmp_path / "env" / "data"
    assert (plan.resolution, plan.resolution_type) == (1024, "pixel_area")


def test_the_dataset_resolution_wins_over_the_config(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, [local_entry(resolution=512, resolution_type="pixel")])
    assert (plan.resolution, plan.resolution_type) == (512, "pixel")


TWO_LOCAL_SETS = (
    "The published trainer cannot run this dataset setup: 2 local datasets (`a`, `b`), and it trains on one "
    "uploaded image set. What would work: use one local dataset (set `disabled: true` on the others); or "
    "agree to merge them into one set with `merge_local_datasets: true` in the API request (`--merge` on "
    "the command line), which loses per-set repeats, size filters, crops and caption strategy differences "
    "(every image is captioned by its file name and centre-cropped square); or push the data to a "
    "(private) Hugging Face dataset and use `type: huggingface` with your HF token."
)


def test_several_local_sets_are_refused_naming_the_opt_in(tmp_path: Path) -> None:
    write_images(tmp_path / "env" / "more", 2)
    with pytest.raises(CloudError) as caught:
        plan_for(tmp_path, [local_entry("a"), local_entry("b", "more"), TEXT_EMBEDS])
    assert caught.value.to_body() == {
        "error": {
            "code": "dataset_unsupported",
            "message": TWO_LOCAL_SETS,
            "hint": "`simpletuner cloud data preview <config> --merge` shows what the merged set would hold.",
        }
    }


def test_several_compatible_local_sets_are_merged_when_the_user_agrees(tmp_path: Path) -> None:
    write_images(tmp_path / "env" / "more", 2)
    entries = [local_entry("a"), local_entry("b", "more", repeats=3, caption_strategy="textfile")]
    plan = plan_for(tmp_path, entries, merge_local=True)
    assert [(d.id, d.action, d.folder) for d in plan.datasets] == [
        ("a", "upload", tmp_path / "env" / "data"),
        ("b", "upload", tmp_path / "env" / "more"),
    ]
    assert plan.warnings == [
        "2 local datasets are merged into one set, as agreed (one folder each in the archive); lost: "
        "per-set repeats, size filters, crops and caption strategy differences (every image is captioned "
        "by its file name and centre-cropped square).",
        "`b`: repeats=3 is lost.",
    ]


def test_one_local_set_needs_no_agreement_and_ignores_it(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, [local_entry(), local_entry("off", disabled=True)], merge_local=True)
    assert [d.id for d in plan.uploads] == ["plushie"] and plan.warnings == []


@pytest.mark.parametrize("merge_local", [False, True])
def test_local_sets_with_different_resolutions_are_refused_even_with_the_agreement(
    tmp_path: Path, merge_local: bool
) -> None:
    with pytest.raises(CloudError) as caught:
        plan_for(tmp_path, [local_entry("a"), local_entry("b", resolution=512)], merge_local=merge_local)
    assert caught.value.to_body() == {
        "error": {
            "code": "dataset_unsupported",
            "message": "The published trainer cannot run this dataset setup: the local datasets use "
            "different resolutions (a: 1024, b: 512); the trainer builds one set with one resolution from "
            "the upload, so they cannot be merged.",
            "hint": WHAT_WORKS,
        }
    }


def test_only_remote_sets_pass_through(tmp_path: Path) -> None:
    webshart = {"id": "web", "type": "webshart", "webshart_source": "https://example.com/shards"}
    plan = plan_for(tmp_path, [HF, webshart, TEXT_EMBEDS])
    assert plan.mode == "remote" and not plan.needs_upload
    assert [d.action for d in plan.datasets] == ["remote", "remote", "skip"]


def test_webshart_from_a_local_source_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, [{"id": "web", "type": "webshart", "webshart_source": "./shards"}])
    assert "`web`" in error.message


def test_aws_needs_the_users_consent(tmp_path: Path) -> None:
    aws = {"id": "s3", "type": "aws", "aws_bucket_name": "b", "aws_access_key_id": "AKIA"}
    assert "verbatim" in refusal(tmp_path, [aws]).message
    assert plan_for(tmp_path, [aws], allow_aws=True).mode == "remote"


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (local_entry(caption_strategy="instanceprompt"), "instanceprompt"),
        (local_entry(caption_strategy="parquet"), "parquet"),
        (local_entry(dataset_type="conditioning"), "conditioning"),
        (local_entry(dataset_type="video"), "video"),
        (local_entry(dataset_type="audio"), "audio"),
        (local_entry(conditioning_data="canny"), "conditioning"),
        ({"id": "c", "type": "csv", "csv_file": "x.csv"}, "csv"),
        ({"id": "odd", "type": "ftp"}, "unknown dataset type"),
    ],
)
def test_setups_the_trainer_cannot_honour_are_refused_before_packaging(
    tmp_path: Path, entry: dict[str, Any], words: str
) -> None:
    assert words in refusal(tmp_path, [entry]).message


def test_local_and_remote_mixed_is_refused(tmp_path: Path) -> None:
    assert "mixed" in refusal(tmp_path, [local_entry(), HF]).message


def test_disabled_and_cache_entries_are_skipped() -> None:
    assert classify(local_entry(disabled=True)) == ("skip", "disabled")
    assert classify(local_entry(disable="true"))[0] == "skip"
    assert classify(local_entry(disabled="false"))[0] == "upload"
    assert classify({"id": "m", "type": "memory"})[0] == "skip"
    for kind in ("text_embeds", "image_embeds", "conditioning_image_embeds"):
        assert classify({"id": "e", "dataset_type": kind})[0] == "skip"


def test_no_enabled_training_set_is_dataset_missing(tmp_path: Path) -> None:
    with pytest.raises(CloudError) as caught:
        plan_for(tmp_path, [local_entry(disabled=True), TEXT_EMBEDS])
    assert caught.value.code == "dataset_missing"


def test_a_missing_folder_is_dataset_missing_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(CloudError) as caught:
        plan_for(tmp_path, [local_entry(folder="gone")])
    assert caught.value.code == "dataset_missing"
    assert str(tmp_path / "env" / "gone") in caught.value.message


def test_folder_placeholders_and_absolute_paths(tmp_path: Path) -> None:
    write_images(tmp_path / "abs" / "flux", 1)
    plan = plan_for(tmp_path, [local_entry(folder=str(tmp_path / "abs" / "{model_family}"))])
    assert plan.uploads[0].folder == tmp_path / "abs" / "flux"


def test_no_dataset_list_is_config_invalid(tmp_path: Path) -> None:
    write_environment(tmp_path, "env")
    (tmp_path / "env" / "multidatabackend.json").unlink()
    with pytest.raises(CloudError) as caught:
        plan_datasets(load_environment("env", tmp_path))
    assert caught.value.code == "config_invalid"
