"""Validate sandbox responses against the response schemas of Replicate's published OpenAPI
description (tests/fixtures/replicate-openapi.json), with `nullable: true` rewritten for JSON
Schema 2020-12 and the whole document registered as one resource so local `$ref`s resolve."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "replicate-openapi.json"
DOC_URI = "urn:replicate-openapi"


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
def _registry() -> Registry:
    return Registry().with_resource(
        DOC_URI, Resource.from_contents(_document(), default_specification=DRAFT202012)
    )


def response_schema(path: str, method: str, status: int = 200) -> dict[str, Any]:
    """The schema for a spec path (without /v1), e.g. ("/predictions/{prediction_id}", "get")."""
    operation = _document()["paths"][path][method.lower()]
    content = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return copy.deepcopy(content)  # type: ignore[no-any-return]


def validate_response(body: Any, path: str, method: str, status: int = 200) -> None:
    schema = response_schema(path, method, status)
    # Resolve the document's "#/components/..." refs against the registered resource.
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": DOC_URI + "#/__target__"}
    document = {**_document(), "__target__": schema}
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    Draft202012Validator(wrapper, registry=registry).validate(body)
