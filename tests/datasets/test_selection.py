"""Safe file selection: one test per rule, and every skipped file carries its reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simpletuner_cloud.datasets import selection
from simpletuner_cloud.datasets.selection import REASONS, select_files
from tests.datasets.factory import IMAGE_STARTS, write_image


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_image(root / "a_photo.jpg", caption="a photo")
    return root


def skipped(root: Path) -> dict[str, str]:
    return {item.path: item.reason for item in select_files(root, "set").skipped}


def taken(root: Path) -> list[str]:
    return [item.arcname for item in select_files(root, "set").files]


def test_images_and_their_captions_are_taken_sorted_including_subfolders(folder: Path) -> None:
    write_image(folder / "sub" / "b_photo.png", caption="b photo")
    write_image(folder / "Z_photo.webp")
    assert taken(folder) == [
        "Z_photo.webp",
        "a_photo.jpg",
        "a_photo.txt",
        "sub/b_photo.png",
        "sub/b_photo.txt",
    ]
    assert skipped(folder) == {}


def test_symlink_leaving_the_folder_is_skipped(folder: Path, tmp_path: Path) -> None:
    outside = write_image(tmp_path / "private" / "secret_photo.jpg")
    (folder / "linked.jpg").symlink_to(outside)
    (folder / "linked_dir").symlink_to(outside.parent, target_is_directory=True)
    assert skipped(folder) == {"linked.jpg": "symlink_outside", "linked_dir": "symlink_outside"}


def test_symlink_inside_the_folder_is_followed_for_files_but_not_folders(folder: Path) -> None:
    write_image(folder / "real" / "c_photo.jpg")
    (folder / "alias_photo.jpg").symlink_to(folder / "a_photo.jpg")
    (folder / "alias_dir").symlink_to(folder / "real", target_is_directory=True)
    assert "alias_photo.jpg" in taken(folder)
    assert skipped(folder) == {"alias_dir": "symlink_folder"}


def test_broken_and_looping_symlinks_are_skipped(folder: Path) -> None:
    (folder / "gone.jpg").symlink_to(folder / "missing.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    assert skipped(folder) == {"gone.jpg": "symlink_loop", "loop.jpg": "symlink_loop"}


def test_symlink_inside_to_a_skipped_file_is_skipped(folder: Path) -> None:
    (folder / ".env").write_text("HF_TOKEN=hf_secret")
    write_image(folder / ".git" / "objects" / "x.jpg")
    (folder / "notes.md").write_text("private")
    (folder / "env_photo.jpg").symlink_to(folder / ".env")
    (folder / "git_photo.jpg").symlink_to(folder / ".git" / "objects" / "x.jpg")
    (folder / "notes_photo.jpg").symlink_to(folder / "notes.md")
    assert skipped(folder) == {
        ".env": "secret",
        ".git/": "vcs_or_venv",
        "env_photo.jpg": "symlink_to_skipped",
        "git_photo.jpg": "symlink_to_skipped",
        "notes.md": "not_training_data",
        "notes_photo.jpg": "symlink_to_skipped",
    }
    assert taken(folder) == ["a_photo.jpg", "a_photo.txt"]


def test_hidden_file_is_skipped(folder: Path) -> None:
    write_image(folder / ".hidden.jpg")
    assert skipped(folder) == {".hidden.jpg": "hidden"}


def test_hidden_folder_is_skipped_with_everything_in_it(folder: Path) -> None:
    write_image(folder / ".cache" / "x_photo.jpg", caption="x photo")
    assert skipped(folder) == {".cache/": "hidden"}
    assert taken(folder) == ["a_photo.jpg", "a_photo.txt"]


@pytest.mark.parametrize(
    "name", [".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".GIT", "Node_Modules"]
)
def test_vcs_and_virtualenv_folders_are_skipped(folder: Path, name: str) -> None:
    write_image(folder / name / "inside.jpg")
    assert skipped(folder) == {f"{name}/": "vcs_or_venv"}


def test_a_folder_holding_pyvenv_cfg_is_a_virtualenv_whatever_its_name(folder: Path) -> None:
    write_image(folder / "env" / "lib" / "site-packages" / "matplotlib" / "sample.png")
    (folder / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert skipped(folder) == {"env/": "vcs_or_venv"}


@pytest.mark.parametrize(
    "name", [".env", ".env.local", "prod.env", "server.pem", "tls.key", "cert.p12", "cert.pfx", "id_rsa",
             "id_ed25519.pub", ".netrc", "credentials.json", "site.crt"],
)  # fmt: skip
def test_secrets_are_skipped(folder: Path, name: str) -> None:
    (folder / name).write_text("SECRET=1")
    assert skipped(folder) == {name: "secret"}


def test_macos_and_windows_metadata_is_skipped(folder: Path) -> None:
    write_image(folder / "__MACOSX" / "a_photo.jpg")
    write_image(folder / "._a_photo.jpg")
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "Thumbs.db").write_bytes(b"\0")
    assert skipped(folder) == {
        "._a_photo.jpg": "os_metadata",
        ".DS_Store": "os_metadata",
        "Thumbs.db": "os_metadata",
        "__MACOSX/": "os_metadata",
    }


def test_non_regular_files_are_skipped(folder: Path) -> None:
    os.mkfifo(folder / "pipe.jpg")
    assert skipped(folder) == {"pipe.jpg": "not_regular"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads everything")
def test_unreadable_files_are_skipped(folder: Path) -> None:
    locked = write_image(folder / "locked.jpg")
    locked.chmod(0)
    try:
        assert skipped(folder) == {"locked.jpg": "unreadable"}
    finally:
        locked.chmod(0o644)


def test_unreadable_files_are_skipped_even_for_root(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root reads every file, so the permission answer is what this test controls
    write_image(folder / "locked.jpg")
    real_access = os.access
    monkeypatch.setattr(
        selection.os,
        "access",
        lambda path, mode: not str(path).endswith("locked.jpg") and real_access(path, mode),
    )
    assert skipped(folder) == {"locked.jpg": "unreadable"}


def test_a_file_name_that_is_not_utf8_is_skipped(folder: Path) -> None:
    descriptor = os.open(os.fsencode(folder) + b"/bad\xff.jpg", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(descriptor)
    assert skipped(folder) == {"bad\ufffd.jpg": "bad_name"}


def test_a_caption_whose_image_is_skipped_is_not_taken(folder: Path, tmp_path: Path) -> None:
    (folder / "outside.jpg").symlink_to(write_image(tmp_path / "elsewhere.jpg"))
    (folder / "outside.txt").write_text("outside")
    assert skipped(folder) == {"outside.jpg": "symlink_outside", "outside.txt": "caption_without_media"}


def test_nothing_is_dropped_silently(folder: Path, tmp_path: Path) -> None:
    """Every entry of the tree is either taken or reported (a skipped folder stands for its contents)."""
    write_image(folder / "sub" / "b_photo.png", caption="b photo")
    write_image(folder / ".git" / "c.jpg")
    write_image(folder / "__MACOSX" / "._a_photo.jpg")
    (folder / ".env.local").write_text("x")
    (folder / "server.key").write_text("x")
    (folder / "notes.md").write_text("x")
    (folder / "link.jpg").symlink_to(write_image(tmp_path / "outside.jpg"))
    os.mkfifo(folder / "sub" / "pipe.png")
    selection = select_files(folder, "set")
    accounted = [f.arcname for f in selection.files] + [s.path.rstrip("/") for s in selection.skipped]
    on_disk = []
    for current, folders, names in os.walk(folder):
        relative = Path(current).relative_to(folder)
        reported = [d for d in folders if (relative / d).as_posix() in accounted]
        folders[:] = [d for d in folders if d not in reported]
        on_disk += [(relative / name).as_posix() for name in [*names, *reported]]
    assert sorted(on_disk) == sorted(accounted)
    assert all(s.reason in REASONS for s in selection.skipped)


def test_files_the_trainer_cannot_use_stay_home(folder: Path) -> None:
    (folder / "notes.md").write_text("private notes")
    (folder / "readme.txt").write_text("not a caption")
    (folder / "model.safetensors").write_bytes(b"\0" * 10)
    assert skipped(folder) == {
        "notes.md": "not_training_data",
        "readme.txt": "caption_without_media",
        "model.safetensors": "not_training_data",
    }


def test_prefix_puts_files_under_a_folder(folder: Path) -> None:
    assert [f.arcname for f in select_files(folder, "set", "set").files] == [
        "set/a_photo.jpg",
        "set/a_photo.txt",
    ]


def test_every_reason_has_an_explanation(folder: Path) -> None:
    (folder / ".env").write_text("x")
    item = select_files(folder, "set").skipped[0]
    assert item.explanation == REASONS["secret"]


def test_counts(folder: Path) -> None:
    selection = select_files(folder, "set")
    assert selection.media_count == 1
    assert selection.total_bytes == sum(p.stat().st_size for p in folder.iterdir())


@pytest.mark.parametrize("extension", sorted(IMAGE_STARTS))
def test_an_image_of_every_accepted_kind_is_taken(folder: Path, extension: str) -> None:
    write_image(folder / f"b_photo.{extension}")
    assert f"b_photo.{extension}" in taken(folder)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("png_named.jpg", IMAGE_STARTS["png"] + b"\0" * 100),
        ("text.png", b"just some text, not a picture"),
        ("empty.webp", b""),
        ("riff_audio.webp", b"RIFF\0\0\0\0WAVEfmt "),
        ("movie.avif", b"\0\0\0\x18ftypisom\0\0\0\0isomavc1"),
        ("heic_named.avif", IMAGE_STARTS["heic"]),
        ("zip.gif", b"PK\x03\x04"),
        ("script.bmp", b"#!/bin/sh\n"),
        ("jpeg_named.tiff", IMAGE_STARTS["jpg"]),
    ],
)
def test_a_file_whose_bytes_are_not_the_image_its_name_says_is_skipped(
    folder: Path, name: str, content: bytes
) -> None:
    (folder / name).write_bytes(content)
    assert skipped(folder) == {name: "not_an_image"}


def test_the_caption_of_a_file_that_is_not_an_image_is_not_taken(folder: Path) -> None:
    (folder / "fake.jpg").write_text("not an image")
    (folder / "fake.txt").write_text("fake")
    assert skipped(folder) == {"fake.jpg": "not_an_image", "fake.txt": "caption_without_media"}


def test_captions_stay_home_when_the_set_is_captioned_by_file_name(folder: Path) -> None:
    result = select_files(folder, "set", captions=False)
    assert [f.arcname for f in result.files] == ["a_photo.jpg"]
    assert {s.path: s.reason for s in result.skipped} == {"a_photo.txt": "caption_not_used"}


def test_each_file_keeps_the_identity_the_selection_saw(folder: Path) -> None:
    item = select_files(folder, "set").files[0]
    info = (folder / "a_photo.jpg").stat()
    assert (item.path, item.device, item.inode, item.size, item.mtime_ns, item.links) == (
        "a_photo.jpg", info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, 1,
    )  # fmt: skip


def test_a_link_inside_is_packaged_from_its_target_under_its_own_name(folder: Path) -> None:
    (folder / "alias_photo.jpg").symlink_to(folder / "a_photo.jpg")
    alias = next(f for f in select_files(folder, "set").files if f.arcname == "alias_photo.jpg")
    assert (alias.source, alias.path) == ((folder / "a_photo.jpg").resolve(), "alias_photo.jpg")


def test_a_hard_link_to_a_file_outside_the_dataset_is_skipped(folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_bytes(IMAGE_STARTS["jpg"] + b"-----BEGIN OPENSSH PRIVATE KEY-----")
    os.link(secret, folder / "holiday.jpg")  # passes every name and symlink rule
    hidden = folder / ".trash"
    hidden.mkdir()
    write_image(folder / "twin.jpg")
    os.link(folder / "twin.jpg", hidden / "twin.jpg")  # inside the folder, but in a part never walked
    assert skipped(folder) == {
        ".trash/": "hidden",
        "holiday.jpg": "hard_link_outside",
        "twin.jpg": "hard_link_outside",
    }


def test_hard_links_that_all_stay_inside_are_taken_and_reported(folder: Path) -> None:
    os.link(folder / "a_photo.jpg", folder / "same_photo.jpg")
    (folder / "sub").mkdir()
    os.link(folder / "a_photo.jpg", folder / "sub" / "a_photo.jpg")
    result = select_files(folder, "set")
    assert [f.arcname for f in result.files] == [
        "a_photo.jpg",
        "a_photo.txt",
        "same_photo.jpg",
        "sub/a_photo.jpg",
    ]
    assert (result.skipped, result.hard_linked) == ([], ["a_photo.jpg", "same_photo.jpg", "sub/a_photo.jpg"])


def test_skipped_files_are_summarised_past_the_first_fifty(folder: Path) -> None:
    for index in range(60):
        (folder / f"notes_{index:02d}.md").write_text("x")
    (folder / ".env").write_text("x")
    summary = selection.skipped_summary(select_files(folder, "set").skipped)
    assert summary == {
        "skipped": [{"path": ".env", "reason": "secret"}]
        + [{"path": f"notes_{index:02d}.md", "reason": "not_training_data"} for index in range(49)],
        "skipped_count": 61,
        "skipped_reasons": {"not_training_data": 60, "secret": 1},
    }
