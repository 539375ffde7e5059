"""Multipart uploads (boto3 switches to them above 8 MiB): each upload is a private folder under the
root's `.multipart/` holding its target key and owner, and one file per received part (parts may
arrive out of order and in parallel; a repeated part number replaces the earlier one). Completing
checks the listed parts and ETags, joins them into one checked temporary file and renames it into
place like a single PUT. Blocking: use a thread."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.objects import IncomingFile, ObjectStore, StoredObject

MULTIPART = ".multipart"
MIN_PART = 5 * 1024 * 1024  # S3's smallest part, except the last one
MAX_PARTS = 10_000
STALE_SECONDS = 7 * 24 * 3600  # an upload neither completed nor aborted is removed after this


@dataclass(frozen=True)
class Upload:
    upload_id: str
    key: str
    owner: str  # the job whose key started it
    checksum: str | None  # the algorithm announced by CreateMultipartUpload (e.g. crc32)


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    checksum: str | None


class MultipartUploads:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.folder = store.root / MULTIPART

    def _dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum() or len(upload_id) > 64:
            raise S3Error("NoSuchUpload", "The specified upload does not exist.")
        return self.folder / upload_id

    def create(self, key: str, owner: str, checksum: str | None) -> Upload:
        self.store.resolve(key)  # refuse a bad key now, not at completion
        upload = Upload(secrets.token_hex(16), key, owner, checksum)
        folder = self._dir(upload.upload_id)
        folder.mkdir(mode=0o700, parents=True)
        meta = {"key": key, "owner": owner, "checksum": checksum, "created": time.time()}
        (folder / "upload.json").write_text(json.dumps(meta))
        return upload

    def get(self, upload_id: str) -> Upload:
        try:
            meta = json.loads((self._dir(upload_id) / "upload.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise S3Error(
                "NoSuchUpload", "The specified upload does not exist.", resource=upload_id
            ) from None
        return Upload(upload_id, str(meta["key"]), str(meta["owner"]), meta.get("checksum"))

    def add_part(self, upload: Upload, number: int, incoming: IncomingFile, checksum: str | None) -> Part:
        if not 1 <= number <= MAX_PARTS:
            incoming.discard()
            raise S3Error("InvalidArgument", f"Part number must be an integer from 1 to {MAX_PARTS}.")
        folder = self._dir(upload.upload_id)
        if not folder.is_dir():
            incoming.discard()
            raise S3Error("NoSuchUpload", "The specified upload does not exist.", resource=upload.upload_id)
        incoming.close()
        part = Part(number, incoming.size, incoming.md5_hex, checksum)
        # The part's data first, its record last: a record always describes a complete part file.
        incoming.path.replace(folder / f"{number:05d}.part")
        (folder / f"{number:05d}.json").write_text(
            json.dumps({"size": part.size, "etag": part.etag, "checksum": checksum})
        )
        return part

    def parts(self, upload: Upload) -> dict[int, Part]:
        found = {}
        for record in sorted(self._dir(upload.upload_id).glob("*.json")):
            if record.name == "upload.json":
                continue
            meta = json.loads(record.read_text())
            number = int(record.stem)
            found[number] = Part(number, int(meta["size"]), str(meta["etag"]), meta.get("checksum"))
        return found

    def complete(self, upload: Upload, listed: list[tuple[int, str]]) -> StoredObject:
        if not listed:
            raise S3Error("MalformedXML", "CompleteMultipartUpload lists no parts.")
        numbers = [number for number, _ in listed]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "The parts must be listed in ascending order, each once.")
        received = self.parts(upload)
        for index, (number, etag) in enumerate(listed):
            part = received.get(number)
            if part is None or part.etag != etag.strip('"'):
                raise S3Error("InvalidPart", f"Part {number} was not uploaded or its ETag does not match.")
            if index < len(listed) - 1 and part.size < MIN_PART:
                raise S3Error(
                    "EntityTooSmall", f"Part {number} is smaller than 5 MiB and is not the last part."
                )
        incoming = self.store.begin()
        digests = hashlib.md5()  # noqa: S324 (S3's multipart ETag: md5 of the parts' md5s)
        try:
            folder = self._dir(upload.upload_id)
            for number, _ in listed:
                digests.update(bytes.fromhex(received[number].etag))
                with (folder / f"{number:05d}.part").open("rb") as source:
                    while chunk := source.read(1024 * 1024):
                        incoming.write(chunk)
            stored = self.store.commit(incoming, upload.key, etag=f"{digests.hexdigest()}-{len(listed)}")
        except BaseException:
            incoming.discard()
            raise
        self.abort(upload)
        return stored

    def abort(self, upload: Upload) -> None:
        shutil.rmtree(self._dir(upload.upload_id), ignore_errors=True)

    def remove_stale(self, now: float | None = None) -> int:
        """Drop uploads started long ago and never finished; returns how many."""
        now = now or time.time()
        removed = 0
        if not self.folder.is_dir():
            return 0
        for folder in self.folder.iterdir():
            try:
                created = float(json.loads((folder / "upload.json").read_text())["created"])
            except (OSError, ValueError, KeyError):
                created = folder.stat().st_mtime
            if now - created > STALE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
