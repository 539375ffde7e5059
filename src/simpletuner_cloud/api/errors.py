"""Map every failure to `{"error": {"code", "message", "hint"}}`: CloudError by its code, FastAPI's
validation errors naming the field, unknown paths as JSON 404, and anything unexpected as a 500
without a traceback (the traceback goes to the redacted log). The OpenAPI document declares that same
body for every error status, so /docs and schema-driven clients (and tests) see what is really sent."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from simpletuner_cloud.errors import CloudError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("bad_request", ""),
    401: ("unauthorized", ""),
    403: ("forbidden", ""),
    404: ("not_found", "Check the path; the API reference is at /docs."),
    405: ("method_not_allowed", "Check the HTTP method; the API reference is at /docs."),
    413: ("payload_too_large", ""),
    415: ("unsupported_media_type", "Send `Content-Type: application/json`."),
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow", title="ErrorDetail")  # e.g. `retry_after`
    code: str  # stable: errors.STATUS_BY_CODE
    message: str
    hint: str
    details: dict[str, Any] | None = None  # `fields` for validation errors, provider evidence, ...


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


def error_response(status: int, code: str, message: str, hint: str = "", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    body.update(extra)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def sentence(message: str) -> str:
    """pydantic prefixes what our validators raise (`Value error, must be ...`); the answer reads as
    `Invalid value for `x`: must be ...`, so the prefix goes."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _error_schema(app: FastAPI) -> None:
    """FastAPI documents its own `{"detail": [...]}` for 422, which this app never sends: declare our
    body for 422 and for any other 4XX/5XX instead."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, part in (
            ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            .pop("$defs", {})
            .items()
        ):
            components[name] = part
        components["ErrorResponse"] = ErrorResponse.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["ErrorResponse"].pop("$defs", None)
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Invalid request (the fields are named)",
                        "content": body,
                    }
                responses.setdefault("4XX", {"description": "Refused (see `error.code`)", "content": body})
                responses.setdefault("5XX", {"description": "Provider or server failure", "content": body})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    _error_schema(app)

    @app.exception_handler(CloudError)
    async def _cloud_error(_: Request, exc: CloudError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                # a JSON syntax error's location is a character offset, not a field
                "field": "body" if err.get("type") == "json_invalid" else _field_name(err.get("loc", ())),
                "message": sentence(str(err.get("msg", "invalid"))),
            }
            for err in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        return error_response(
            422,
            "validation_error",
            f"Invalid value for `{first['field']}`: {first['message']}",
            "Fix the named field and send the request again.",
            details={"fields": problems},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, hint = _HTTP_CODES.get(exc.status_code, ("http_error", ""))
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message, hint)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500,
            "internal_error",
            "The server hit an unexpected error; nothing was changed by this request.",
            "See the server log for details and report it if it happens again.",
        )
