"""`/v1/files`: multipart uploads kept on disk, metadata as Replicate returns it, signed download
URLs, the 100 MiB limit (413) and expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from simpletuner_cloud.sandbox.clock import iso
from simpletuner_cloud.sandbox.jobs import new_id
from simpletuner_cloud.sandbox.pages import paginate
from simpletuner_cloud.sandbox.problems import FILE_NOT_FOUND, FILE_TOO_LARGE, Problem, bad_request

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.runtime import Sandbox

_CHUNK = 1024 * 1024


@dataclass
class StoredFile:
    id: str
    name: str
    content_type: str
    size: int
    md5: str
    sha256: str
    metadata: dict[str, Any]
    created_at: float
    expires_at: float
    path: Path
    seq: int


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, StoredFile] = {}
        self._seq = 0

    def add(
        self,
        upload: UploadFile,
        name: str,
        content_type: str,
        metadata: dict[str, Any],
        now: float,
        ttl: float,
    ) -> StoredFile:
        file_id = new_id()
        path = self.root / file_id
        md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        upload.file.seek(0)
        with path.open("wb") as out:
            while chunk := upload.file.read(_CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
                out.write(chunk)
        self._seq += 1
        stored = StoredFile(
            file_id,
            name,
            content_type,
            size,
            md5.hexdigest(),
            sha256.hexdigest(),
            metadata,
            now,
            now + ttl,
            path,
            self._seq,
        )
        self.files[file_id] = stored
        return stored

    def get(self, file_id: str, now: float) -> StoredFile | None:
        stored = self.files.get(file_id)
        if stored is not None and stored.expires_at <= now:
            self.delete(file_id)
            return None
        return stored

    def delete(self, file_id: str) -> bool:
        stored = self.files.pop(file_id, None)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return True

    def expire(self, now: float) -> None:
        for file_id in [f.id for f in self.files.values() if f.expires_at <= now]:
            self.delete(file_id)

    def clear(self) -> None:
        self.files.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)


def file_json(stored: StoredFile, base_url: str) -> dict[str, Any]:
    return {
        "id": stored.id,
        "name": stored.name,
        "content_type": stored.content_type,
        "size": stored.size,
        "etag": stored.md5,
        "checksums": {"sha256": stored.sha256, "md5": stored.md5},
        "metadata": stored.metadata,
        "created_at": iso(stored.created_at),
        "expires_at": iso(stored.expires_at),
        "urls": {"get": f"{base_url}/v1/files/{stored.id}"},
    }


def download_signature(secret: bytes, owner: str, file_id: str, expiry: str) -> str:
    digest = hmac.new(secret, f"{owner} {file_id} {expiry}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


router = APIRouter()


def _form_text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


@router.post("/v1/files", status_code=201)
async def create_file(request: Request) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    try:
        form = await request.form(max_part_size=16 * 1024 * 1024)
    except Exception as exc:  # malformed multipart in any of the parser's ways
        raise bad_request("Invalid multipart form data") from exc
    try:
        content = form.get("content")
        if not isinstance(content, UploadFile):
            raise Problem(400, {"detail": "The `content` field is required", "status": 400})
        if (content.size or 0) > sandbox.config.file_size_limit:
            raise Problem(413, FILE_TOO_LARGE)
        name = _form_text(form.get("filename")) or content.filename or "file"
        if len(name.encode()) > 255:
            raise bad_request("filename must be at most 255 bytes")
        content_type = _form_text(form.get("type")) or content.content_type or "application/octet-stream"
        raw_metadata = _form_text(form.get("metadata")) or "{}"
        try:
            metadata = json.loads(raw_metadata)
        except json.JSONDecodeError as exc:
            raise bad_request("metadata must be a JSON object") from exc
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be a JSON object")
        stored = await asyncio.to_thread(  # up to 100 MiB of disk writes: keep the loop free
            sandbox.files.add,
            content,
            name,
            content_type,
            metadata,
            sandbox.clock.now(),
            sandbox.config.file_expiry_seconds,
        )
    finally:
        await form.close()
    return file_json(stored, sandbox.config.base_url)


@router.get("/v1/files")
async def list_files(request: Request) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    sandbox.files.expire(sandbox.clock.now())
    newest_first = sorted(sandbox.files.files.values(), key=lambda f: f.seq, reverse=True)
    return paginate(
        newest_first,
        seq_of=lambda f: f.seq,
        render=lambda f: file_json(f, sandbox.config.base_url),
        url=f"{sandbox.config.base_url}/v1/files",
        query=dict(request.query_params),
        page_size=sandbox.config.page_size,
    )


def _stored(request: Request, file_id: str) -> StoredFile:
    sandbox = request.app.state.sandbox
    stored = sandbox.files.get(file_id, sandbox.clock.now())
    if stored is None:
        raise Problem(404, FILE_NOT_FOUND)
    return stored


@router.get("/v1/files/{file_id}")
async def get_file(request: Request, file_id: str) -> dict[str, Any]:
    return file_json(_stored(request, file_id), request.app.state.sandbox.config.base_url)


@router.delete("/v1/files/{file_id}", status_code=204)
async def delete_file(request: Request, file_id: str) -> Response:
    _stored(request, file_id)
    request.app.state.sandbox.files.delete(file_id)
    return Response(status_code=204)


download_router = APIRouter()


@download_router.get("/v1/files/{file_id}/download")
async def download_file(request: Request, file_id: str) -> FileResponse:
    """Raw bytes as `application/octet-stream` (what the spec declares, whatever the upload's type).
    The spec's three query parameters are the only key, as on Replicate: `owner` must be the
    account, `expiry` a whole number of Unix seconds still ahead, and `signature` the HMAC of
    `"{owner} {id} {expiry}"`. An API token does not stand in for them. Anything else is the spec's
    404, so a probe learns nothing about which part was wrong."""
    sandbox = request.app.state.sandbox
    query = request.query_params
    owner, expiry, signature = query.get("owner"), query.get("expiry"), query.get("signature")
    if not (owner and expiry and signature and expiry.isascii() and expiry.isdigit()):
        raise Problem(404, FILE_NOT_FOUND)
    expected = download_signature(sandbox.signing_key, owner, file_id, expiry)
    valid = hmac.compare_digest(expected.encode(), signature.encode())
    if not valid or owner != sandbox.config.account_username or int(expiry) <= sandbox.clock.now():
        raise Problem(404, FILE_NOT_FOUND)
    stored = _stored(request, file_id)
    return FileResponse(stored.path, media_type="application/octet-stream", filename=stored.name)


def signed_download_url(sandbox: Sandbox, file_id: str, ttl: float) -> str:
    """A download URL valid for `ttl` seconds of the sandbox clock, signed as Replicate signs them."""
    owner = sandbox.config.account_username
    expiry = str(int(sandbox.clock.now() + ttl))
    signature = download_signature(sandbox.signing_key, owner, file_id, expiry)
    query = urlencode({"owner": owner, "expiry": expiry, "signature": signature})
    return f"{sandbox.config.base_url}/v1/files/{file_id}/download?{query}"
