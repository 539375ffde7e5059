"""Check a prediction's `input` against a version's Cog `Input` schema, the way Replicate's API
layer does: required, type, enum, bounds and `format: uri`, with gojsonschema-worded
`invalid_fields`. Unknown inputs are not errors: Cog drops them, and the run logs a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# What a Cog `Path`/URL input can be given (the spec: "Files should be passed as HTTP URLs or data
# URLs"); any other scheme could only fail once the run tries to fetch it.
INPUT_URI_SCHEMES = ("http", "https", "data")

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


@dataclass
class InputCheck:
    accepted: dict[str, Any] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    invalid_fields: list[dict[str, str]] = field(default_factory=list)


def _given(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), "object")


def _matches(expected: str, value: Any) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def is_uri(value: str, schemes: tuple[str, ...] = INPUT_URI_SCHEMES) -> bool:
    """An absolute URI in one of `schemes`, with a host (or, for `data:`, a payload after a comma).
    Whitespace and control characters anywhere are refused: Go's url.Parse (behind Replicate's
    gojsonschema) refuses control characters, and a `$`-anchored regex would let a final newline
    through to the HTTP client."""
    if any(c.isspace() or not c.isprintable() for c in value) or "\\" in value:
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    if parts.scheme not in schemes:
        return False
    if parts.scheme == "data":
        return "," in parts.path
    return bool(parts.hostname)


def _resolve(prop: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """Cog renders enums as `allOf: [{"$ref": "#/components/schemas/<name>"}]`."""
    for part in prop.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            target = document.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
            prop = {**target, **{k: v for k, v in prop.items() if k != "allOf"}}
    return prop


def check_input(value: Any, openapi_schema: dict[str, Any], schema_name: str = "Input") -> InputCheck:
    result = InputCheck()
    if not isinstance(value, dict):
        result.invalid_fields.append(
            {
                "type": "invalid_type",
                "field": "input",
                "description": f"Invalid type. Expected: object, given: {_given(value)}",
            }
        )
        return result
    schema = openapi_schema.get("components", {}).get("schemas", {}).get(schema_name, {})
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            result.invalid_fields.append(
                {"type": "required", "field": "input", "description": f"{name} is required"}
            )
    for name, item in value.items():
        prop = properties.get(name)
        if prop is None:
            result.unknown.append(name)
            continue
        prop = _resolve(prop, openapi_schema)
        problem = _check_value(f"input.{name}", item, prop)
        if problem:
            result.invalid_fields.append(problem)
        else:
            result.accepted[name] = item
    return result


def _check_value(path: str, value: Any, prop: dict[str, Any]) -> dict[str, str] | None:
    if value is None:
        if prop.get("nullable") or "type" not in prop:
            return None
        return {
            "type": "invalid_type",
            "field": path,
            "description": f"Invalid type. Expected: {prop['type']}, given: null",
        }
    expected = prop.get("type")
    if expected and not _matches(expected, value):
        return {
            "type": "invalid_type",
            "field": path,
            "description": f"Invalid type. Expected: {expected}, given: {_given(value)}",
        }
    if "enum" in prop and value not in prop["enum"]:
        choices = ", ".join(
            f'"{choice}"' if isinstance(choice, str) else str(choice) for choice in prop["enum"]
        )
        return {
            "type": "enum",
            "field": path,
            "description": f"{path} must be one of the following: {choices}",
        }
    if prop.get("format") == "uri" and isinstance(value, str) and not is_uri(value):
        return {"type": "format", "field": path, "description": "Does not match format 'uri'"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "maximum" in prop and value > prop["maximum"]:
            return {
                "type": "number_lte",
                "field": path,
                "description": f"Must be less than or equal to {prop['maximum']}",
            }
        if "minimum" in prop and value < prop["minimum"]:
            return {
                "type": "number_gte",
                "field": path,
                "description": f"Must be greater than or equal to {prop['minimum']}",
            }
    return None


def with_defaults(
    accepted: dict[str, Any], openapi_schema: dict[str, Any], schema_name: str = "Input"
) -> dict[str, Any]:
    """What the model's predict() receives: declared defaults filled in, unknown keys gone."""
    properties = (
        openapi_schema.get("components", {}).get("schemas", {}).get(schema_name, {}).get("properties", {})
    )
    filled = {name: prop["default"] for name, prop in properties.items() if "default" in prop}
    filled.update(accepted)
    return filled
