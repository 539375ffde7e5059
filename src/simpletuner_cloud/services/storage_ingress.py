"""The storage ingress's use case: who is calling (SigV4 with a job's own key, checked by botocore's
signer), whether that job may do this (its own prefix only, until a grace period after it ends), and
then the S3 operation on the object store. Each object written is recorded as an artifact of the job's
local delivery, which moves to `receiving` with the first one. Errors are S3's (storage/errors.py)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote

import anyio

from simpletuner_cloud.domain.artifacts import classify
from simpletuner_cloud.services.storage_access import Caller, IngressRequest, authenticate, header
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.storage import xml
from simpletuner_cloud.storage.bodies import SUPPORTED, Body, announced_checksum, receive_body
from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.multipart import MultipartUploads, Upload
from simpletuner_cloud.storage.objects import ListedFile, ObjectStore, StoredObject
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce

log = logging.getLogger(__name__)
PREFIX = "/api/cloud/storage"
LOCAL_BUCKET = "cloud-outputs"
MAX_LIST_KEYS = 1000


@dataclass
class IngressAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # served with Range support by the route


class StorageIngress:
    def __init__(
        self, settings: Settings, database: Database, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = ObjectStore(settings.outputs_dir)
        self.uploads = MultipartUploads(self.store)

    async def handle(self, request: IngressRequest) -> IngressAnswer:
        path = request.raw_path.removeprefix(PREFIX)
        try:
            bucket, _, raw_key = path.lstrip("/").partition("/")
            bucket, key = unquote(bucket), unquote(raw_key)
            query = parse_qs(request.raw_query, keep_blank_values=True)
            caller = await self._authenticate(request)
            return await self._dispatch(request, caller, bucket, key, query)
        except S3Error as exc:
            if not exc.resource:
                exc.resource = unquote(path)
            # The body may be unread (a refusal before it, or midway): close, so its bytes are never
            # taken for the next request on this connection.
            headers = {"Content-Type": "application/xml", "Connection": "close"}
            return IngressAnswer(exc.status, headers, exc.to_xml())

    async def _authenticate(self, request: IngressRequest) -> Caller:
        return await authenticate(self.settings, self.database, request, self.clock())

    # What it may do ---------------------------------------------------------------------------------
    @staticmethod
    def _own_key(caller: Caller, bucket: str, key: str) -> str:
        """The key's name inside the job's folder; refuses other buckets and other jobs' prefixes."""
        if bucket != LOCAL_BUCKET:
            raise S3Error("AccessDenied", f"This key may only use the bucket {LOCAL_BUCKET!r}.")
        if not key.startswith(f"{caller.job_id}/") or len(key) == len(caller.job_id) + 1:
            raise S3Error("AccessDenied", f"This key may only write under {caller.job_id}/.")
        return key[len(caller.job_id) + 1 :]

    async def _dispatch(
        self, request: IngressRequest, caller: Caller, bucket: str, key: str, query: dict[str, list[str]]
    ) -> IngressAnswer:
        method = request.method
        if not key:
            if bucket != LOCAL_BUCKET:
                raise S3Error(
                    "NoSuchBucket" if bucket else "AccessDenied", "Only the cloud-outputs bucket is here."
                )
            if method == "HEAD":
                return IngressAnswer(200)
            if method == "GET" and query.get("list-type") == ["2"]:
                return await self._list(caller, query)
            raise S3Error("NotImplemented", "Only ListObjectsV2 (list-type=2) is supported on the bucket.")
        name = self._own_key(caller, bucket, key)
        upload_id = _first(query, "uploadId")
        if method == "PUT" and upload_id is None:
            if header(request, "x-amz-copy-source"):
                raise S3Error("NotImplemented", "CopyObject is not supported.")
            return await self._put(request, caller, key, name)
        if method == "PUT":
            return await self._upload_part(request, caller, key, upload_id or "", query)
        if method == "POST" and "uploads" in query:
            algorithm, kind = _multipart_checksum(request)
            upload = await anyio.to_thread.run_sync(self.uploads.create, key, caller.job_id, algorithm, kind)
            return _xml(xml.initiate_multipart(bucket, key, upload.upload_id))
        if method == "POST" and upload_id is not None:
            return await self._complete(request, caller, key, name, upload_id)
        if method == "DELETE" and upload_id is not None:
            upload = await self._own_upload(caller, key, upload_id)
            await anyio.to_thread.run_sync(self.uploads.abort, upload)
            return IngressAnswer(204)
        if method == "DELETE":
            if await anyio.to_thread.run_sync(self.store.delete, key):
                async with self.database.session() as session:
                    await ledger.delete_artifact(session, caller.delivery_id, name)
                    await session.commit()
            return IngressAnswer(204)
        if method in ("GET", "HEAD"):
            return await self._get(caller, key, name)
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on an object.")

    # Operations -------------------------------------------------------------------------------------
    async def _put(self, request: IngressRequest, caller: Caller, key: str, name: str) -> IngressAnswer:
        body = await self._receive(request, caller)
        stored = await self._commit(body, key)
        await self._record(caller, name, stored)
        return IngressAnswer(200, {"ETag": f'"{stored.etag}"', **body.echo_headers()})

    async def _receive(
        self, request: IngressRequest, caller: Caller, required_checksum: str | None = None
    ) -> Body:
        """The request's body, checked (size, checksum, aws-chunked framing) into a temporary file."""
        return await receive_body(
            request.headers,
            request.body,
            self.store.begin,
            caller.max_object_bytes,
            header(request, "x-amz-content-sha256") or "",
            required_checksum,
        )

    async def _commit(self, body: Body, key: str, etag: str | None = None) -> StoredObject:
        try:
            return await anyio.to_thread.run_sync(self.store.commit, body.file, key, etag)
        except S3Error:
            body.file.discard()
            raise
        except OSError as exc:
            body.file.discard()
            raise S3Error("InternalError", f"The object could not be written: {exc.strerror}.") from exc

    async def _upload_part(
        self, request: IngressRequest, caller: Caller, key: str, upload_id: str, query: dict[str, list[str]]
    ) -> IngressAnswer:
        upload = await self._own_upload(caller, key, upload_id)
        number = _ascii_int(_first(query, "partNumber"), 5)
        if number is None:
            raise S3Error("InvalidArgument", "partNumber must be an integer from 1 to 10000.")
        body = await self._receive(request, caller, upload.checksum)
        part = await anyio.to_thread.run_sync(
            self.uploads.add_part, upload, number, body.file, body.checksum_algorithm, body.checksum_value
        )
        return IngressAnswer(200, {"ETag": f'"{part.etag}"', **body.echo_headers()})

    async def _complete(
        self, request: IngressRequest, caller: Caller, key: str, name: str, upload_id: str
    ) -> IngressAnswer:
        upload = await self._own_upload(caller, key, upload_id)
        raw = bytearray()
        async for piece in request.body:
            raw += piece
            if len(raw) > xml.MAX_COMPLETE_BODY:
                raise S3Error("MalformedXML", "The CompleteMultipartUpload body is too large.")
        listed = xml.parse_complete(bytes(raw))
        full = announced_checksum(request.headers).algorithm
        if full is not None and full != upload.checksum:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created with {(upload.checksum or 'no').upper()} checksum, "
                f"not {full.upper()}.",
            )
        parts = await anyio.to_thread.run_sync(self.uploads.parts, upload)
        total = sum(parts[item.number].size for item in listed if item.number in parts)
        if total > caller.max_object_bytes:
            raise S3Error(
                "EntityTooLarge",
                f"The object is larger than this server accepts ({caller.max_object_bytes:,} bytes).",
            )
        sent = header(request, f"x-amz-checksum-{full}") if full else None
        try:
            done = await anyio.to_thread.run_sync(self.uploads.complete, upload, listed, sent)
        except OSError as exc:
            raise S3Error("InternalError", f"The object could not be written: {exc.strerror}.") from exc
        await self._record(caller, name, done.stored)
        location = f"{PREFIX}/{LOCAL_BUCKET}/{key}"
        checksum = None
        if done.checksum_algorithm and done.checksum and done.checksum_type:
            checksum = (done.checksum_algorithm, done.checksum, done.checksum_type)
        return _xml(xml.complete_multipart(location, LOCAL_BUCKET, key, done.stored.etag, checksum))

    async def _own_upload(self, caller: Caller, key: str, upload_id: str) -> Upload:
        upload = await anyio.to_thread.run_sync(self.uploads.get, upload_id)
        if upload.owner != caller.job_id or upload.key != key:
            raise S3Error("NoSuchUpload", "The specified upload does not exist.", resource=upload_id)
        return upload

    async def _get(self, caller: Caller, key: str, name: str) -> IngressAnswer:
        path, info = await anyio.to_thread.run_sync(self.store.file, key)
        async with self.database.session() as session:
            etags = await ledger.artifact_etags(session, caller.delivery_id, [name])
        headers = {"Last-Modified": _http_date(info.st_mtime)}
        if name in etags:
            headers["ETag"] = f'"{etags[name]}"'
        return IngressAnswer(200, headers, file=path)

    async def _list(self, caller: Caller, query: dict[str, list[str]]) -> IngressAnswer:
        def one(name: str) -> str | None:
            return _first(query, name)

        prefix = one("prefix") or ""
        own = f"{caller.job_id}/"
        if not (prefix.startswith(own) or (own.startswith(prefix) and prefix.startswith(caller.job_id))):
            raise S3Error("AccessDenied", f"This key may only list under {own}.")
        delimiter = one("delimiter") or None
        max_keys = _ascii_int(one("max-keys") or str(MAX_LIST_KEYS), 10)
        if max_keys is None:
            raise S3Error("InvalidArgument", "max-keys must be an integer from 0 to 2147483647.")
        max_keys = min(max_keys, MAX_LIST_KEYS)
        token = one("continuation-token")
        after = _decode_token(token) if token else (one("start-after") or "")
        files = await anyio.to_thread.run_sync(lambda: list(self.store.walk(caller.job_id)))
        listed: list[ListedFile] = []
        commons: list[str] = []
        last, truncated = "", False
        for item in files:
            if not item.key.startswith(prefix) or item.key <= after:
                continue
            rest = item.key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if commons and commons[-1] == common:
                    continue
                entry: object = common
            else:
                entry = item
            if len(listed) + len(commons) >= max_keys:
                truncated = True
                break
            if isinstance(entry, str):
                commons.append(entry)
                last = entry
            else:
                listed.append(item)
                last = item.key
        async with self.database.session() as session:
            names = [item.key[len(own) :] for item in listed]
            etags = await ledger.artifact_etags(session, caller.delivery_id, names)
        body = xml.list_objects_v2(
            bucket=LOCAL_BUCKET,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            files=listed,
            common_prefixes=commons,
            etags={f"{own}{name}": etag for name, etag in etags.items()},
            truncated=truncated,
            continuation_token=token,
            next_token=_encode_token(last) if truncated else None,
            start_after=one("start-after"),
            url_encoded=one("encoding-type") == "url",
        )
        return _xml(body)

    async def _record(self, caller: Caller, name: str, stored: StoredObject) -> None:
        """The artifact row; the delivery moves to `receiving` with its first file."""
        kind, step = classify(name)
        now = self.clock()
        async with self.database.session() as session:
            await ledger.record_artifact(
                session,
                caller.delivery_id,
                caller.job_id,
                name,
                kind=kind,
                step=step,
                size=stored.size,
                sha256=stored.sha256,
                etag=stored.etag,
                location=str(stored.path),
                received_at=now,
            )
            moved = await ledger.update_delivery(
                session, caller.delivery_id, from_states=("pending",), state="receiving", received_at=now
            )
            if moved:
                await repo.add_event(
                    session,
                    caller.job_id,
                    "delivery",
                    message="Files are arriving in cloud_outputs.",
                    data={"destination": "local", "state": "receiving"},
                )
                await announce(session, caller.job_id)
            await session.commit()


def _ascii_int(text: str | None, max_digits: int) -> int | None:
    """A non-negative integer written in ASCII digits, else None (int() also takes a sign, spaces,
    "_" and other scripts' digits: `partNumber=%EF%BC%95` is a full-width 5)."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


def _multipart_checksum(request: IngressRequest) -> tuple[str | None, str]:
    """CreateMultipartUpload's x-amz-checksum-algorithm and x-amz-checksum-type, checked."""
    algorithm = (header(request, "x-amz-checksum-algorithm") or "").strip().lower() or None
    kind = (header(request, "x-amz-checksum-type") or "").strip().upper() or "COMPOSITE"
    if algorithm is not None and algorithm not in SUPPORTED:
        raise S3Error(
            "InvalidRequest", f"The checksum algorithm {algorithm.upper()} is not supported; use CRC32."
        )
    if kind not in ("COMPOSITE", "FULL_OBJECT") or (kind == "FULL_OBJECT" and algorithm != "crc32"):
        raise S3Error(
            "InvalidRequest",
            "x-amz-checksum-type must be COMPOSITE, or FULL_OBJECT with a CRC32 x-amz-checksum-algorithm.",
        )
    return algorithm, kind


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _xml(body: bytes) -> IngressAnswer:
    return IngressAnswer(200, {"Content-Type": "application/xml"}, body)


def _http_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise S3Error("InvalidArgument", "The continuation token is not valid.") from None
