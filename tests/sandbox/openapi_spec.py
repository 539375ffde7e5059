"""Check sandbox responses against Replicate's published OpenAPI description
(tests/fixtures/replicate-openapi.json, a byte-for-byte copy of shared/reference) with openapi-core.

openapi-core finds the operation from the request's method and path and the response from the real
status code and media type, so a 200 where the spec says 201, or JSON where it says octet-stream,
fails as surely as a wrong body. Two known quirks of the document are handled first
(docs/replicate-api.md section 8.4): `nullable: true` (a 3.0 keyword in a 3.1 document) becomes a
`"null"` type, and the spec's own validation is skipped because the document uses the non-standard
`query` method on `/models`."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "replicate-openapi.json"
# Hosts of the real service that no sandbox answer may point at (docs/replicate-api.md 8.1.1).
REAL_HOSTS = re.compile(rb"replicate\.com|replicate\.delivery")


def _rewrite_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _rewrite_nullable(value) for key, value in node.items()}
        if node.pop("nullable", False) is True and "type" in node:
            kind = node["type"]
            node["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
        return node
    if isinstance(node, list):
        return [_rewrite_nullable(item) for item in node]
    return node


@cache
def _document() -> dict[str, Any]:
    return _rewrite_nullable(json.loads(SPEC_PATH.read_text()))  # type: ignore[no-any-return]


@cache
def _openapi(server_url: str) -> OpenAPI:
    document = copy.deepcopy(_document())
    document["servers"] = [{"url": server_url}]
    config = Config(
        spec_validator_cls=None,
        extra_media_type_deserializers={
            "application/problem+json": json.loads,
            # `{"type": "string", "format": "binary"}`: any bytes; the validator wants a str.
            "application/octet-stream": lambda data: data.decode("latin-1"),
        },
    )
    return OpenAPI.from_dict(document, config=config)


class _Request:
    """openapi-core's request protocol over an httpx request; only method and URL matter here."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = request.method.lower()
        self.body = None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, status: int, content_type: str, headers: dict[str, str], data: bytes) -> None:
        self.status_code = status
        self.content_type = content_type
        self.headers = Headers(headers)
        self.data = data


def assert_conforms(response: httpx.Response, prefix: str = "") -> None:
    """Raise unless `response` is an answer the spec defines for its operation, with a body that
    validates against that answer's schema. `prefix` is a mount point before `/v1`."""
    assert not REAL_HOSTS.search(response.content), response.text[:500]
    url = urlsplit(str(response.request.url))
    request = _Request(response.request)
    answer = _Response(
        response.status_code,
        response.headers.get("content-type", ""),
        dict(response.headers),
        response.content,
    )
    _openapi(f"{url.scheme}://{url.netloc}{prefix}/v1").validate_response(request, answer)


async def check_every_response(response: httpx.Response) -> None:
    """An httpx response hook for the sandbox tests' client: every `/v1` answer the spec defines must
    conform, every success must be one the spec defines, and no answer may name a real host.
    Error statuses the spec leaves out (401, 422, 429, 5xx) are checked body by body in the tests."""
    await response.aread()
    assert not REAL_HOSTS.search(response.content), response.text[:500]
    if not response.request.url.path.startswith("/v1/"):
        return
    try:
        assert_conforms(response)
    except (PathNotFound, OperationNotFound, ResponseNotFound):
        if response.is_success:
            raise


def assert_job_body(body: bytes, kind: str = "predictions") -> None:
    """A webhook body is the GET representation: validate it as a GET /v1/{kind}/{id} answer."""
    job_id = json.loads(body)["id"]
    request = httpx.Request("GET", f"http://sandbox.invalid/v1/{kind}/{job_id}")
    response = httpx.Response(200, content=body, headers={"content-type": "application/json"})
    response.request = request
    assert_conforms(response)
