"""Map every failure to `{"error": {"code", "message", "hint"}}`: CloudError by its code, FastAPI's
validation errors naming the field, unknown paths as JSON 404, and anything unexpected as a 500
without a traceback (the traceback goes to the redacted log). The OpenAPI document declares that same
body for every error status, so /docs and schema-driven clients (and tests) see what is really sent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from simpletuner_cloud.errors import CloudError

log = logging.getLogger(__name__)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# FastAPI's 400 for a body it cannot read at all: not UTF-8, nested past the parser's depth, an
# integer past Python's 4,300 digits (one message for each).
BODY_UNREADABLE = "There was an error parsing the body"
BODY_UNREADABLE_HINT = (
    "Send a JSON body encoded as UTF-8, with `Content-Type: application/json`: nested at most a few "
    "hundred levels deep and with numbers of at most 4,300 digits. The API reference is at /docs."
)
_HTTP_CODES = {
    400: ("bad_request", "Check the request against the API reference at /docs."),
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


def error_response(
    status: int,
    code: str,
    message: str,
    hint: str = "",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    body.update(extra)
    sent = dict(headers or {})
    if "retry_after" in extra:
        sent["Retry-After"] = str(extra["retry_after"])
    return JSONResponse({"error": body}, status_code=status, headers=sent or None)


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

    def _allowed_methods(request: Request) -> list[str]:
        """Every method some route of this path takes (the router asked, one method at a time)."""
        routes = request.app.router.routes
        return [
            method
            for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
        ]

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
        if exc.status_code == 400 and message == BODY_UNREADABLE:
            message, hint = "The request body could not be read as JSON.", BODY_UNREADABLE_HINT
        # The exception's headers are part of the answer: a 405's `Allow`, a 401's `WWW-Authenticate`.
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the first route of the path only
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(exc.status_code, code, message, hint, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(
            500,
            "internal_error",
            "The server hit an unexpected error; nothing was changed by this request.",
            "See the server log for details and report it if it happens again.",
        )
