"""Replicate's `/v1/files`: a streaming multipart upload straight from disk (exact Content-Length, bounded
memory, byte progress), plus get, list and delete. The caller injects an `httpx.AsyncClient` whose base
URL and `Authorization` header point at Replicate (or the sandbox)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.errors import error_from_response

CHUNK = 1024 * 1024
Progress = Callable[[int, int], None]


async def upload_file(
    http: httpx.AsyncClient,
    path: Path,
    *,
    filename: str,
    content_type: str = "application/zip",
    metadata: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """POST the file as multipart/form-data and return Replicate's file object (201)."""
    size = (await anyio.Path(path).stat()).st_size
    boundary = secrets.token_hex(16)
    safe_name = _header_safe(filename)
    # The official client's shape: name and type in the `content` part's headers, metadata as a field.
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="metadata"\r\n\r\n'
        f"{json.dumps(metadata or {}, sort_keys=True)}\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="content"; filename="{safe_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),  # httpx then sends no chunked encoding
    }
    body = _stream(path, size, head, tail, on_progress)
    response = await http.post("/v1/files", content=body, headers=headers)
    if not response.is_success:
        raise error_from_response(response.request, response)
    return _json(response)


async def get_file(http: httpx.AsyncClient, file_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/files/{file_id}")
    if not response.is_success:
        raise error_from_response(response.request, response)
    return _json(response)


async def list_files(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The first page, newest first (as the official client reads it)."""
    response = await http.get("/v1/files")
    if not response.is_success:
        raise error_from_response(response.request, response)
    results = _json(response).get("results")
    return [item for item in results if isinstance(item, dict)] if isinstance(results, list) else []


async def delete_file(http: httpx.AsyncClient, file_id: str) -> bool:
    """True when deleted now, False when Replicate no longer has it (deleting is idempotent)."""
    try:
        response = await http.delete(f"/v1/files/{file_id}")
    except CloudError as error:  # the provider client's transport maps a 404 itself
        if error.code == "provider_not_found":
            return False
        raise
    if response.status_code == 404:
        return False
    if not response.is_success:
        raise error_from_response(response.request, response)
    return True


def is_reusable(file: dict[str, Any], sha256: str, now: datetime, min_remaining: timedelta) -> bool:
    """Replicate still holds these exact bytes long enough for a job to fetch them."""
    checksums = file.get("checksums") if isinstance(file.get("checksums"), dict) else {}
    expires = parse_time(file.get("expires_at"))
    return bool(checksums and checksums.get("sha256") == sha256 and expires and expires > now + min_remaining)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def _stream(
    path: Path, size: int, head: bytes, tail: bytes, on_progress: Progress | None
) -> AsyncIterator[bytes]:
    yield head
    sent = 0
    async with await anyio.open_file(path, "rb", buffering=0) as handle:
        while chunk := await handle.read(CHUNK):
            sent += len(chunk)
            if sent > size:
                break
            yield chunk
            if on_progress:
                on_progress(sent, size)
    if sent != size:  # the promised Content-Length would be a lie
        raise CloudError(
            f"{path} changed size while uploading.",
            code="dataset_changed",
            hint="Package the dataset again, then retry.",
        )
    yield tail


def _header_safe(name: str) -> str:
    cleaned = re.sub(r'[\r\n"\\]', "_", name)
    return cleaned.encode("utf-8")[:255].decode("utf-8", "ignore") or "file"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CloudError(
            f"Replicate answered {response.request.url.path} with something that is not a JSON object.",
            code="provider_error",
        )
    return data
