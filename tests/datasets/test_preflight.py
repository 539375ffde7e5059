"""Preflight: textfile captions, empty and oversized datasets, and the archive size it promises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simpletuner_cloud.datasets.archive import build_archive
from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.preflight import UPLOAD_LIMIT_BYTES, run_preflight
from simpletuner_cloud.errors import CloudError
from tests.datasets.factory import local_entry, write_environment, write_image, write_images


def test_textfile_captions_equal_to_file_names_are_accepted(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", datasets=[local_entry(caption_strategy="textfile")])
    preflight = run_preflight(load_environment("env", tmp_path))
    assert preflight.selections[0].media_count == 3


def test_textfile_captions_that_differ_are_refused_by_name(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env", datasets=[local_entry(caption_strategy="textfile")])
    (folder / "data" / "sks_plushie_photo_1.txt").write_text("a completely different caption")
    (folder / "data" / "sks_plushie_photo_2.txt").unlink()
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert caught.value.code == "dataset_unsupported"
    assert caught.value.details["mismatching_files"] == [
        "sks_plushie_photo_1.txt",
        "sks_plushie_photo_2.jpg (no .txt)",
    ]


def test_a_folder_without_images_is_dataset_empty_and_lists_skipped_files(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env", images=0)
    (folder / "data").mkdir()
    (folder / "data" / ".env").write_text("HF_TOKEN=x")
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert caught.value.code == "dataset_empty"
    assert caught.value.details == {
        "skipped": [{"path": ".env", "reason": "secret"}],
        "skipped_count": 1,
        "skipped_reasons": {"secret": 1},
    }


def test_over_the_limit_is_upload_too_large_naming_size_and_limit(tmp_path: Path) -> None:
    write_environment(tmp_path, "env")
    config = load_environment("env", tmp_path)
    size = run_preflight(config).archive_size
    assert run_preflight(config, limit=size).archive_size == size  # the limit itself is allowed
    with pytest.raises(CloudError) as caught:
        run_preflight(config, limit=size - 1)
    error = caught.value
    assert error.code == "upload_too_large" and error.status == 413
    assert f"{size:,} bytes" in error.message and f"{size - 1:,} bytes" in error.message
    assert "Resize" in error.hint and "remote dataset" in error.hint
    assert UPLOAD_LIMIT_BYTES == 104_857_600


def test_preflight_size_is_the_size_of_the_archive_built_from_it(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env")
    write_image(folder / "data" / "big.png", 50_000)
    preflight = run_preflight(load_environment("env", tmp_path))
    assert preflight.layout is not None
    result = build_archive(preflight.layout, tmp_path / "out.zip")
    assert result.size == preflight.archive_size == (tmp_path / "out.zip").stat().st_size


def test_several_sets_merged_as_agreed_get_one_folder_each(tmp_path: Path) -> None:
    folder = write_environment(
        tmp_path, "env", datasets=[local_entry("first set"), local_entry("second", "more")]
    )
    write_images(folder / "more", 2)
    preflight = run_preflight(load_environment("env", tmp_path), merge_local=True)
    names = [f.arcname for s in preflight.selections for f in s.files]
    assert {name.split("/")[0] for name in names} == {"first_set", "second"}


def test_remote_plans_need_no_archive(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", datasets=[{"id": "hub", "type": "huggingface", "dataset_name": "a/b"}])
    preflight = run_preflight(load_environment("env", tmp_path))
    assert (preflight.needs_upload, preflight.archive_size, preflight.layout) == (False, 0, None)


def test_a_set_captioned_by_file_name_packages_no_text_files(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", datasets=[local_entry(caption_strategy="filename")])
    preflight = run_preflight(load_environment("env", tmp_path))
    assert preflight.layout is not None
    archive = build_archive(preflight.layout, tmp_path / "out.zip")
    assert [entry.path for entry in archive.manifest] == [f"sks_plushie_photo_{i}.jpg" for i in range(3)]
    assert [s.reason for s in preflight.selections[0].skipped] == ["caption_not_used"] * 3


def test_hard_links_inside_the_dataset_are_packaged_and_reported(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env")
    os.link(folder / "data" / "sks_plushie_photo_0.jpg", folder / "data" / "copy_photo.jpg")
    preflight = run_preflight(load_environment("env", tmp_path))
    assert preflight.selections[0].media_count == 4
    assert preflight.plan.warnings == [
        "`plushie`: 2 file(s) have several hard links, all inside the dataset folder, and are packaged under "
        "each name (copy_photo.jpg, sks_plushie_photo_0.jpg)."
    ]


def test_the_dataset_empty_error_names_the_first_fifty_skipped_files(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env", images=0)
    (folder / "data").mkdir()
    for index in range(80):
        (folder / "data" / f"passwd_{index:02d}").write_text("root:x:0:0")
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert caught.value.details == {
        "skipped": [{"path": f"passwd_{index:02d}", "reason": "not_training_data"} for index in range(50)],
        "skipped_count": 80,
        "skipped_reasons": {"not_training_data": 80},
    }


def test_a_value_the_trainer_cannot_parse_is_refused_before_the_dataset(tmp_path: Path) -> None:
    """Checked before any folder is read, so the data preview refuses it too."""
    write_environment(tmp_path, "env", options={"max_train_steps": "abc"}, images=0)
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert caught.value.code == "trainer_argument_invalid"
    assert caught.value.details["argument"] == "max_train_steps"


def test_the_model_family_list_is_checked_only_when_the_caller_knows_the_extras(tmp_path: Path) -> None:
    write_environment(tmp_path, "env", options={"model_family": "z_image"})
    assert run_preflight(load_environment("env", tmp_path)).selections  # a preview cannot know them
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path), model_families=[])
    assert caught.value.details["argument"] == "model_family"
    run_preflight(load_environment("env", tmp_path), model_families=["z_image"])


def test_lycoris_without_its_json_is_refused(tmp_path: Path) -> None:
    folder = write_environment(tmp_path, "env", options={"lora_type": "lycoris"})
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert (caught.value.code, caught.value.details["argument"]) == (
        "trainer_argument_invalid",
        "lycoris_config",
    )
    (folder / "lycoris_config.json").write_text('{"algo": "lokr", "multiplier": 1}')
    run_preflight(load_environment("env", tmp_path))
