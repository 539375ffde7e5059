"""The archive: deterministic bytes, exact preflight size, readable by zipfile, found by a trainer walk."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from simpletuner_cloud.datasets import archive, zipformat
from simpletuner_cloud.datasets.archive import build_archive, exact_archive_size, plan_archive
from simpletuner_cloud.datasets.selection import IMAGE_EXTENSIONS, select_files
from simpletuner_cloud.errors import CloudError
from tests.datasets.factory import JPEG_START, set_mtime, write_image


def make_dataset(root: Path, order: list[int] | None = None, mtime: int = 1_700_000_000) -> Path:
    for index in order or [0, 1, 2, 3]:
        image = write_image(root / f"photo_{index}.jpg", 3000 + index, caption=f"photo {index}", seed=index)
        set_mtime(image, mtime + index)
    long_caption = root / "sub" / "long_caption.txt"
    write_image(root / "sub" / "long_caption.png", 500)
    long_caption.write_text("a very long caption, " * 200)  # big enough to be deflated
    return root


def build(root: Path, out: Path) -> archive.ArchiveResult:
    layout = plan_archive(select_files(root, "set").files)
    result = build_archive(layout, out)
    assert result.size == layout.size == out.stat().st_size
    return result


def test_same_inputs_give_the_same_bytes_whatever_the_mtimes_and_creation_order(tmp_path: Path) -> None:
    first = build(make_dataset(tmp_path / "a", [0, 1, 2, 3]), tmp_path / "a.zip")
    second = build(make_dataset(tmp_path / "b", [3, 1, 0, 2], mtime=1_600_000_000), tmp_path / "b.zip")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert first.sha256 == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()


def test_a_changed_byte_changes_the_digest(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "a")
    before = build(root, tmp_path / "a.zip").sha256
    write_image(root / "photo_0.jpg", 3000, seed=99)
    assert build(root, tmp_path / "b.zip").sha256 != before


def test_entries_are_sorted_timestamped_1980_stored_or_deflated(tmp_path: Path) -> None:
    build(make_dataset(tmp_path / "a"), tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names, key=lambda n: n.encode())
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        methods = {info.filename: info.compress_type for info in infos}
    assert methods["photo_0.jpg"] == zipfile.ZIP_STORED
    assert methods["photo_0.txt"] == zipfile.ZIP_STORED  # too small for deflate to win
    assert methods["sub/long_caption.txt"] == zipfile.ZIP_DEFLATED


def test_preflight_size_equals_the_built_size_and_manifest_matches_content(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "a")
    files = select_files(root, "set").files
    size = exact_archive_size(files)
    result = build_archive(plan_archive(files), tmp_path / "a.zip")
    assert size == result.size == (tmp_path / "a.zip").stat().st_size
    for entry in result.manifest:
        data = (root / entry.path).read_bytes()
        assert (entry.size, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_large_files_take_the_two_pass_path_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_dataset(tmp_path / "a")
    reference = build(root, tmp_path / "a.zip").sha256
    monkeypatch.setattr(archive, "WHOLE_READ_LIMIT", 100)
    monkeypatch.setattr(archive, "CHUNK", 1000)
    assert build(root, tmp_path / "b.zip").sha256 == reference


def test_zip64_records_are_sized_exactly_and_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lowering the limits makes tiny files cross them, so zip64 is checked without gigabytes.
    monkeypatch.setattr(zipformat, "ZIP64_LIMIT", 2500)
    monkeypatch.setattr(zipformat, "ZIP_COUNT_LIMIT", 5)
    root = make_dataset(tmp_path / "a")
    build(root, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.testzip() is None
        assert zf.read("photo_3.jpg") == (root / "photo_3.jpg").read_bytes()
        assert len(zf.infolist()) == 10
    data = (tmp_path / "a.zip").read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # zip64 end record and locator


@pytest.mark.skipif(shutil.which("unzip") is None, reason="needs unzip")
def test_unzip_accepts_the_archive(tmp_path: Path) -> None:
    build(make_dataset(tmp_path / "a"), tmp_path / "a.zip")
    subprocess.run(["unzip", "-tq", str(tmp_path / "a.zip")], check=True, capture_output=True)


def test_writing_to_a_file_object_and_progress(tmp_path: Path) -> None:
    layout = plan_archive(select_files(make_dataset(tmp_path / "a"), "set").files)
    seen: list[tuple[int, int]] = []
    buffer = io.BytesIO()
    result = build_archive(layout, buffer, progress=lambda done, total: seen.append((done, total)))
    assert len(buffer.getvalue()) == result.size
    assert seen[-1] == (result.size, result.size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_file_that_changes_after_preflight_stops_the_build(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "a")
    layout = plan_archive(select_files(root, "set").files)
    (root / "photo_1.jpg").write_bytes(b"shorter")
    with pytest.raises(CloudError) as caught:
        build_archive(layout, tmp_path / "a.zip")
    assert caught.value.code == "dataset_changed"
    assert not (tmp_path / "a.zip").exists()
    assert not list(tmp_path.glob(".a.zip*"))


def test_a_trainer_like_walk_of_the_extracted_archive_finds_every_image(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "a")
    build(root, tmp_path / "a.zip")
    target = tmp_path / "extracted"
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        for name in zf.namelist():  # the trainer's traversal guard
            assert not name.startswith("/") and ".." not in Path(name).parts
        zf.extractall(target)
    found = sorted(
        os.path.relpath(os.path.join(folder, name), target)
        for folder, _, names in os.walk(target, followlinks=True)
        for name in names
        if name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS
    )
    assert found == ["photo_0.jpg", "photo_1.jpg", "photo_2.jpg", "photo_3.jpg", "sub/long_caption.png"]


def test_building_streams_with_bounded_memory(tmp_path: Path) -> None:
    """40 MiB of images (one past the whole-read limit) are packaged holding a bounded few MiB."""
    root = tmp_path / "big"
    root.mkdir()
    for index in range(30):
        (root / f"photo_{index:02d}.jpg").write_bytes(JPEG_START + os.urandom(1024 * 1024))
    (root / "panorama.jpg").write_bytes(JPEG_START + os.urandom(archive.WHOLE_READ_LIMIT + 2 * 1024 * 1024))
    layout = plan_archive(select_files(root, "set").files)
    tracemalloc.start()
    try:
        result = build_archive(layout, tmp_path / "big.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size > 40 * 1024 * 1024
    # three read-ahead batches at most (two queued, one being written), plus a few chunks in flight
    assert peak < 3 * archive.BATCH_BYTES + 6 * archive.CHUNK


def changed_after_selection(tmp_path: Path, change: Callable[[Path], None]) -> CloudError:
    root = make_dataset(tmp_path / "a")
    layout = plan_archive(select_files(root, "set").files)
    change(root)
    with pytest.raises(CloudError) as caught:
        build_archive(layout, tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists() and not list(tmp_path.glob(".a.zip*"))
    return caught.value


def swap_for_another_file(root: Path) -> None:
    """Same name, same size, same mtime: only the inode tells it is not the file that was shown."""
    original = root / "photo_1.jpg"
    other = root / "swap.tmp"
    other.write_bytes(b"\xff\xd8\xff" + b"x" * (original.stat().st_size - 3))
    os.utime(other, ns=(original.stat().st_atime_ns, original.stat().st_mtime_ns))
    os.replace(other, original)


def swap_for_a_link(root: Path, target: Path) -> None:
    (root / "photo_1.jpg").unlink()
    (root / "photo_1.jpg").symlink_to(target)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (swap_for_another_file, "it was replaced by another file"),
        (lambda root: os.utime(root / "photo_1.jpg", (1, 1)), "it was modified"),
        (lambda root: (root / "photo_1.jpg").unlink(), "it was deleted or moved"),
        (lambda root: (root / "sub" / "long_caption.txt").write_text("other"), "its size changed from"),
    ],
)
def test_a_file_swapped_or_changed_after_selection_fails_the_package(
    tmp_path: Path, change: Callable[[Path], None], why: str
) -> None:
    error = changed_after_selection(tmp_path, change)
    assert error.code == "dataset_changed" and why in error.message
    assert "changed after it was selected" in error.message and "preview" in error.hint


def test_a_file_replaced_by_a_link_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"\xff\xd8\xff" + b"k" * 2998)  # an image by its first bytes, the same size
    error = changed_after_selection(tmp_path, lambda root: swap_for_a_link(root, secret))
    assert (error.code, error.message.split(": ", 1)[1].split(";")[0]) == (
        "dataset_changed",
        "it was replaced by a symbolic link",
    )


def test_the_archive_is_written_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        build(make_dataset(tmp_path / "a"), tmp_path / "a.zip")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.zip").stat().st_mode) == 0o600
