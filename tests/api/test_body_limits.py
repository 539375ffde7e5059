"""Body limits: management JSON is capped at 1 MiB, webhooks at 16 MiB; over it, a JSON 413."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.api.body_limits import MIB, limit_for
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import live_server


@pytest.fixture
def base() -> Iterator[str]:
    with live_server(create_app(load_settings())) as url:
        yield url


def test_limits_by_path() -> None:
    assert limit_for("/api/cloud/providers/replicate") == MIB
    assert limit_for("/api/webhooks/replicate") == 16 * MIB
    assert limit_for("/api/cloud/storage/bucket/key") is None
    assert limit_for("/sandbox/v1/files") is None


def test_oversized_management_body_is_413(base: str) -> None:
    body = b'{"public_url": "' + b"x" * (MIB + 10) + b'"}'
    response = httpx.put(
        f"{base}/api/cloud/providers/replicate", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": "The request body is larger than this endpoint accepts (1,048,576 bytes).",
            "hint": "Send a smaller body; datasets are uploaded by the server, not through this endpoint.",
        }
    }


def test_oversized_chunked_body_is_413(base: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"public_url": "'
        for _ in range(20):
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = httpx.put(
        f"{base}/api/cloud/providers/replicate",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_normal_body_passes(base: str) -> None:
    response = httpx.put(f"{base}/api/cloud/providers/replicate", json={"http_timeout": 12})
    assert response.status_code == 200
    assert response.json()["http_timeout"] == 12
