"""Objects as files: keys that could leave the root are refused, links are never followed, a write
appears only once complete and replaces the old file in one step, listings skip links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.multipart import MIN_PART, ListedPart, MultipartUploads, Part
from simpletuner_cloud.storage.objects import ObjectStore, key_parts


def put(store: ObjectStore, key: str, data: bytes) -> None:
    incoming = store.begin()
    incoming.write(data)
    store.commit(incoming, key)


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("", "InvalidArgument"),
        ("job/../x", "InvalidArgument"),
        ("/job/x", "InvalidArgument"),
        ("job/x/", "InvalidArgument"),
        ("job//x", "InvalidArgument"),
        ("job/./x", "InvalidArgument"),
        ("job\\x", "InvalidArgument"),
        ("job/x\x00", "InvalidArgument"),
        ("job/x\n", "InvalidArgument"),
        ("job/" + "a" * 256, "KeyTooLongError"),
        ("job/" + "a/" * 600 + "x", "KeyTooLongError"),
    ],
)
def test_keys_that_are_not_plain_relative_paths_are_refused(key: str, code: str) -> None:
    with pytest.raises(S3Error) as refused:
        key_parts(key)
    assert refused.value.code == code


def test_hidden_first_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(S3Error) as refused:
        ObjectStore(tmp_path).resolve(".incoming/x")
    assert refused.value.message == "The object key may not start with a hidden name."


def test_a_write_is_renamed_into_place_private_and_replaces_the_old_file(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    put(store, "job/run/a.bin", b"first")
    incoming = store.begin()
    incoming.write(b"second, longer")
    assert (tmp_path / "job/run/a.bin").read_bytes() == b"first"  # readers see the old file until then
    stored = store.commit(incoming, "job/run/a.bin")
    assert (tmp_path / "job/run/a.bin").read_bytes() == b"second, longer"
    assert stored.size == 14 and stored.etag == stored.md5
    assert oct((tmp_path / "job/run/a.bin").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "job/run").stat().st_mode & 0o777) == "0o700"
    assert list((tmp_path / ".incoming").iterdir()) == []


def test_links_on_the_way_or_at_the_end_are_never_followed(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "job").mkdir(parents=True)
    (tmp_path / "root" / "job" / "run").symlink_to(outside)
    with pytest.raises(S3Error):
        put(store, "job/run/x", b"x")
    (tmp_path / "root" / "job" / "file").symlink_to(outside / "target")
    put(store, "job/file", b"replaced the link, not its target")
    assert not (outside / "target").exists() and not (tmp_path / "root/job/file").is_symlink()
    (outside / "secret.txt").write_text("not yours")
    (tmp_path / "root" / "job" / "peek").symlink_to(outside / "secret.txt")
    with pytest.raises(S3Error) as refused:
        store.file("job/peek")
    assert refused.value.code == "NoSuchKey"
    assert [item.key for item in store.walk("job")] == ["job/file"]


def test_a_key_cannot_be_both_a_file_and_a_folder(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    put(store, "job/a/b", b"x")
    with pytest.raises(S3Error) as folder:
        put(store, "job/a", b"x")
    assert folder.value.message == "The key names a folder that holds other objects."
    with pytest.raises(S3Error):
        put(store, "job/a/b/c", b"x")
    assert list((tmp_path / ".incoming").iterdir()) == []


def test_multipart_checks_order_etags_and_part_sizes(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    uploads = MultipartUploads(store)
    upload = uploads.create("job/big", "job_a", "crc32")
    parts = {}
    for number, data in ((2, b"tail"), (1, os.urandom(MIN_PART))):  # out of order
        incoming = store.begin()
        incoming.write(data)
        parts[number] = uploads.add_part(upload, number, incoming, "crc32", incoming.checksum("crc32"))
    with pytest.raises(S3Error) as order:
        uploads.complete(upload, [listed(parts[2]), listed(parts[1])])
    assert order.value.code == "InvalidPartOrder"
    small = uploads.create("job/small", "job_a", None)
    for number in (1, 2):
        incoming = store.begin()
        incoming.write(b"x")
        parts[10 + number] = uploads.add_part(small, number, incoming, None, None)
    with pytest.raises(S3Error) as too_small:
        uploads.complete(small, [listed(parts[11]), listed(parts[12])])
    assert too_small.value.code == "EntityTooSmall"
    first = ListedPart(1, f'"{parts[1].etag}"', {"crc32": parts[1].checksum or ""})
    done = uploads.complete(upload, [first, listed(parts[2])])
    assert (tmp_path / "job/big").stat().st_size == MIN_PART + 4 and done.stored.etag.endswith("-2")
    with pytest.raises(S3Error) as gone:
        uploads.get(upload.upload_id)
    assert gone.value.code == "NoSuchUpload"
    uploads.abort(small)
    assert list((tmp_path / ".multipart").iterdir()) == []


def listed(part: Part) -> ListedPart:
    """The part as a CompleteMultipartUpload body lists it (with its checksum, if it has one)."""
    checksums = {part.algorithm: part.checksum} if part.algorithm and part.checksum else {}
    return ListedPart(part.number, part.etag, checksums)


def test_stale_multipart_uploads_are_removed(tmp_path: Path) -> None:
    uploads = MultipartUploads(ObjectStore(tmp_path))
    old = uploads.create("job/a", "job_a", None)
    fresh = uploads.create("job/b", "job_a", None)
    now = json.loads((uploads.folder / old.upload_id / "upload.json").read_text())["created"]
    assert uploads.remove_stale(now + 7 * 24 * 3600 + 1) == 2
    assert uploads.remove_stale() == 0 and fresh.upload_id != old.upload_id
