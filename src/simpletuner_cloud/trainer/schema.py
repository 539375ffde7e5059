"""Check trainer inputs against the chosen model version's Cog `openapi_schema` before anything is
uploaded: an undeclared input, a wrong type or a value outside an enum is refused by name."""

from __future__ import annotations

from typing import Any

from simpletuner_cloud.errors import CloudError

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def input_schema(openapi_schema: dict[str, Any]) -> dict[str, Any]:
    """`components.schemas.Input` of a version's OpenAPI document."""
    try:
        schema = openapi_schema["components"]["schemas"]["Input"]
    except (KeyError, TypeError):
        raise CloudError(
            "The trainer version has no input schema (components.schemas.Input).",
            code="trainer_input_invalid",
            hint="Pick another version of the trainer model.",
        ) from None
    if not isinstance(schema, dict):
        raise CloudError("The trainer version's input schema is not an object.", code="trainer_input_invalid")
    return schema


def check_trainer_inputs(inputs: dict[str, Any], openapi_schema: dict[str, Any]) -> None:
    """Raises `trainer_input_unknown` or `trainer_input_invalid` naming the first offending input."""
    schema = input_schema(openapi_schema)
    properties: dict[str, Any] = schema.get("properties") or {}
    unknown = sorted(name for name in inputs if name not in properties)
    if unknown:
        raise CloudError(
            f"The trainer version does not declare the input{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'`{name}`' for name in unknown)}.",
            code="trainer_input_unknown",
            hint="This version of the trainer is older or newer than this tool expects; pick a version whose "
            f"inputs include it (declared: {', '.join(sorted(properties))}).",
            details={"unknown": unknown},
        )
    for name in schema.get("required") or []:
        if inputs.get(name) is None:
            raise invalid(name, "is required by the trainer version but missing")
    for name, value in inputs.items():
        if value is None:
            continue  # an absent input
        check_value(name, value, resolve(properties[name], openapi_schema))


def resolve(prop: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """Merge `$ref` and `allOf` parts (Cog writes enums as `allOf: [{"$ref": ...}]`)."""
    merged = {key: value for key, value in prop.items() if key not in ("allOf", "$ref")}
    parts = list(prop.get("allOf") or [])
    if "$ref" in prop:
        parts.append({"$ref": prop["$ref"]})
    for part in parts:
        if "$ref" in part:
            part = {**_follow(part["$ref"], document), **{k: v for k, v in part.items() if k != "$ref"}}
        for key, value in resolve(part, document).items():
            merged.setdefault(key, value)
    return merged


def check_value(name: str, value: Any, schema: dict[str, Any]) -> None:
    expected = schema.get("type")
    if isinstance(expected, str) and expected in _PYTHON_TYPES:
        allowed = _PYTHON_TYPES[expected]
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and expected != "boolean"):
            raise invalid(name, f"must be {expected}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise invalid(name, f"must be one of {', '.join(map(repr, schema['enum']))}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise invalid(name, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise invalid(name, f"must be at most {schema['maximum']}")


def invalid(name: str, problem: str) -> CloudError:
    return CloudError(
        f"Trainer input `{name}` {problem}.",
        code="trainer_input_invalid",
        hint="Check the value against the chosen trainer version's inputs.",
        details={"input": name},
    )


def _follow(ref: str, document: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise CloudError(f"Unsupported schema reference {ref}.", code="trainer_input_invalid")
    node: Any = document
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            raise CloudError(f"Schema reference {ref} does not resolve.", code="trainer_input_invalid")
        node = node[part]
    return node if isinstance(node, dict) else {}
