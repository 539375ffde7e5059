"""Textfile captions through `rename_to_captions`: each image named after its own caption in the archive
(the trainer reads the stem with `_` as spaces), duplicates in sub-folders, long captions cut at a word
boundary within 255 bytes, first lines of multi-line files, unsafe characters replaced, every change
reported, and what the sandbox trainer derives from the built archive."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from simpletuner_cloud.datasets.archive import build_archive
from simpletuner_cloud.datasets.captions import NAME_LIMIT, caption_stem, first_line, trainer_caption
from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.preflight import Preflight, run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.sandbox.dataset_archive import sample_captions
from tests.datasets.factory import local_entry, write_environment, write_image


def textfile_env(configs_dir: Path, captions: dict[str, str], **entry: Any) -> Path:
    """An environment whose one `textfile` set holds `<name>.jpg` + `<name>.txt` for each caption."""
    folder = write_environment(
        configs_dir, "env", datasets=[local_entry(caption_strategy="textfile", **entry)], images=0
    )
    for index, (name, caption) in enumerate(captions.items()):
        write_image(folder / "data" / name, 1200 + index, seed=index)
        (folder / "data" / name).with_suffix(".txt").write_text(caption)
    return folder


def renamed(configs_dir: Path) -> Preflight:
    return run_preflight(load_environment("env", configs_dir), rename_to_captions=True)


def archive_names(preflight: Preflight) -> dict[str, str]:
    return {f.path: f.arcname for s in preflight.selections for f in s.files}


def changes(preflight: Preflight) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    return [
        (c.path, c.archive_name, c.caption, c.trainer_caption, c.changes)
        for cs in preflight.caption_changes.values()
        for c in cs
    ]


def test_without_the_agreement_differing_captions_are_refused_naming_it(tmp_path: Path) -> None:
    textfile_env(tmp_path, {"IMG_0001.jpg": "a red car on a bridge"})
    with pytest.raises(CloudError) as caught:
        run_preflight(load_environment("env", tmp_path))
    assert caught.value.code == "dataset_unsupported"
    assert "`rename_to_captions: true`" in caught.value.hint and "--rename-to-captions" in caught.value.hint


def test_each_image_and_its_caption_file_are_named_after_the_caption(tmp_path: Path) -> None:
    textfile_env(tmp_path, {"IMG_0001.jpg": "a red car on a bridge", "sub/IMG_0002.jpg": "sks dog, sleeping"})
    preflight = renamed(tmp_path)
    assert archive_names(preflight) == {
        "IMG_0001.jpg": "a_red_car_on_a_bridge.jpg",
        "IMG_0001.txt": "a_red_car_on_a_bridge.txt",
        "sub/IMG_0002.jpg": "sks_dog,_sleeping.jpg",
        "sub/IMG_0002.txt": "sks_dog,_sleeping.txt",
    }
    assert changes(preflight) == []  # both captions come back whole
    assert preflight.plan.warnings == [
        "`plushie`: each image is named after its caption in the archive, as agreed (the files on disk keep "
        "their names); the preview lists every caption that had to change."
    ]


def test_images_with_the_same_caption_go_into_separate_folders_not_suffixes(tmp_path: Path) -> None:
    textfile_env(tmp_path, {"a.jpg": "sks dog", "b.jpg": "sks dog", "c.png": "sks  dog", "d.jpg": "sks cat"})
    preflight = renamed(tmp_path)
    assert archive_names(preflight) == {
        "a.jpg": "sks_dog.jpg",
        "a.txt": "sks_dog.txt",
        "b.jpg": "same-caption-2/sks_dog.jpg",
        "b.txt": "same-caption-2/sks_dog.txt",
        "c.png": "same-caption-3/sks_dog.png",
        "c.txt": "same-caption-3/sks_dog.txt",
        "d.jpg": "sks_cat.jpg",
        "d.txt": "sks_cat.txt",
    }
    assert changes(preflight) == [("c.png", "same-caption-3/sks_dog.png", "sks  dog", "sks dog", ("spaces",))]


def test_a_caption_over_the_name_limit_is_cut_at_a_word_boundary_in_bytes(tmp_path: Path) -> None:
    caption = " ".join(["Überraschung"] * 30)  # 13 bytes a word in UTF-8 (Ü is two), 389 bytes in all
    textfile_env(tmp_path, {"long.jpeg": caption})
    preflight = renamed(tmp_path)
    name = archive_names(preflight)["long.jpeg"]
    kept = " ".join(["Überraschung"] * 17)  # 17 words and 16 `_` are 237 bytes; 18 and `.jpeg` would be 256
    assert name == kept.replace(" ", "_") + ".jpeg" and len(name.encode()) <= NAME_LIMIT
    assert changes(preflight) == [("long.jpeg", name, caption, kept, ("cut",))]


def test_a_single_word_too_long_is_cut_without_splitting_a_character() -> None:
    stem, notes = caption_stem("日本" * 100, "png")  # three bytes a character
    assert (len(stem.encode()), notes) == (249, ["cut"])  # 255 - len(".png") = 251, rounded down to 3s
    assert stem == ("日本" * 100)[:83]


def test_multi_line_caption_files_use_their_first_line(tmp_path: Path) -> None:
    textfile_env(tmp_path, {"a.jpg": "\ufeff\n  sks dog on grass  \nsecond caption\nthird\n"})
    preflight = renamed(tmp_path)
    assert changes(preflight) == [
        ("a.jpg", "sks_dog_on_grass.jpg", "sks dog on grass", "sks dog on grass", ("first_line",))
    ]
    assert first_line("one\r\ntwo") == ("one", True)


@pytest.mark.parametrize(
    ("caption", "stem", "notes"),
    [
        ("AC/DC poster", "AC_DC_poster", ["replaced"]),
        ("back\\slash", "back_slash", ["replaced"]),
        ("nul\x00here\x7fand\x01there", "nul_here_and_there", ["replaced"]),
        ("tab\tseparated", "tab_separated", ["replaced"]),
        ("...hidden name", "hidden_name", ["spaces"]),
        ("._resource fork", "_resource_fork", ["spaces", "underscore"]),
        ("snake_case word", "snake_case_word", ["underscore"]),
        ("café ☕ time", "café_☕_time", []),
    ],
)
def test_characters_a_name_cannot_hold_are_replaced_and_reported(
    caption: str, stem: str, notes: list[str]
) -> None:
    assert caption_stem(caption, "jpg") == (stem, notes)


def test_every_changed_caption_is_listed_with_what_the_trainer_will_read(tmp_path: Path) -> None:
    textfile_env(tmp_path, {"a.jpg": "AC/DC poster", "b.jpg": "snake_case word", "c.jpg": "plain words"})
    assert changes(renamed(tmp_path)) == [
        ("a.jpg", "AC_DC_poster.jpg", "AC/DC poster", "AC DC poster", ("replaced",)),
        ("b.jpg", "snake_case_word.jpg", "snake_case word", "snake case word", ("underscore",)),
    ]


def test_images_without_a_caption_are_refused_by_name(tmp_path: Path) -> None:
    folder = textfile_env(tmp_path, {"a.jpg": "sks dog", "b.jpg": "   \n\n", "c.jpg": "...", "d.jpg": "x"})
    (folder / "data" / "d.txt").unlink()
    with pytest.raises(CloudError) as caught:
        renamed(tmp_path)
    assert (caught.value.code, caught.value.details) == (
        "dataset_unsupported",
        {"uncaptioned_files": ["b.jpg (empty caption)", "c.jpg (empty caption)", "d.jpg (no .txt)"]},
    )


def test_merged_sets_are_renamed_each_in_its_own_folder(tmp_path: Path) -> None:
    folder = write_environment(
        tmp_path,
        "env",
        datasets=[
            local_entry("one", caption_strategy="textfile"),
            local_entry("two", "more", caption_strategy="textfile"),
        ],
        images=0,
    )
    for sub in ("data", "more"):
        write_image(folder / sub / "x.jpg", caption="sks dog")
        write_image(folder / sub / "y.jpg", caption="sks dog")
    preflight = run_preflight(load_environment("env", tmp_path), merge_local=True, rename_to_captions=True)
    assert sorted(f.arcname for s in preflight.selections for f in s.files) == [
        "one/same-caption-2/sks_dog.jpg", "one/same-caption-2/sks_dog.txt",
        "one/sks_dog.jpg", "one/sks_dog.txt",
        "two/same-caption-2/sks_dog.jpg", "two/same-caption-2/sks_dog.txt",
        "two/sks_dog.jpg", "two/sks_dog.txt",
    ]  # fmt: skip


def test_the_trainer_derives_each_images_own_caption_from_the_archive(tmp_path: Path) -> None:
    captions = {
        "IMG_1.jpg": "a red car on a bridge",
        "IMG_2.jpg": "a red car on a bridge",
        "IMG_3.png": "AC/DC poster\nalternative caption",
        "IMG_4.webp": " ".join(["word"] * 80),
    }
    textfile_env(tmp_path, captions)
    preflight = renamed(tmp_path)
    assert preflight.layout is not None
    archive = build_archive(preflight.layout, tmp_path / "out.zip")
    assert archive.size == preflight.archive_size
    derived = sample_captions((tmp_path / "out.zip").read_bytes())
    expected = {c.archive_name: c.trainer_caption for cs in preflight.caption_changes.values() for c in cs}
    assert derived == {
        "a_red_car_on_a_bridge.jpg": "a red car on a bridge",
        "same-caption-2/a_red_car_on_a_bridge.jpg": "a red car on a bridge",
        "AC_DC_poster.png": "AC DC poster",
        expected_cut(captions["IMG_4.webp"], "webp") + ".webp": " ".join(["word"] * 50),
    }
    assert {name: derived[name] for name in expected} == expected  # the preview told the truth
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert zf.read("AC_DC_poster.txt") == b"AC/DC poster\nalternative caption"


def expected_cut(caption: str, extension: str) -> str:
    """`word` is 4 bytes and `_` 1: 50 words take 249 bytes, and with `.webp` 254 <= 255."""
    return "_".join(caption.split()[:50])


def test_a_caption_edited_after_the_preview_fails_the_package(tmp_path: Path) -> None:
    folder = textfile_env(tmp_path, {"a.jpg": "sks dog"})
    preflight = renamed(tmp_path)
    (folder / "data" / "a.txt").write_text("sks dog, renamed meanwhile")
    assert preflight.layout is not None
    with pytest.raises(CloudError) as caught:
        build_archive(preflight.layout, tmp_path / "out.zip")
    assert caught.value.code == "dataset_changed"


def test_the_derivation_is_the_trainers() -> None:
    assert trainer_caption("same-caption-2/sks_dog_on_grass.jpg") == "sks dog on grass"
    assert trainer_caption("a_cat..png") == "a cat."
