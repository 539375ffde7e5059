"""What prediction and training creation share: reading the JSON body, the webhook fields,
`Prefer: wait`, `Cancel-After`, input validation, and handing the job to the runtime."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
from fastapi import Request
from starlette.responses import JSONResponse

from simpletuner_cloud.sandbox.catalogue import Model, Version
from simpletuner_cloud.sandbox.jobs import WEBHOOK_EVENTS, Job, job_json, new_id
from simpletuner_cloud.sandbox.problems import bad_request, validation_problem
from simpletuner_cloud.sandbox.validation import check_input, is_uri, with_defaults

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# The create bodies the spec describes. Both prediction requests say `additionalProperties: false`;
# the training request is held to the same rule (docs/decisions.md), so the official client's legacy
# `webhook_completed` is refused too.
PREDICTION_FIELDS = ("version", "input", "webhook", "webhook_events_filter", "stream")
MODEL_PREDICTION_FIELDS = ("input", "webhook", "webhook_events_filter", "stream")
TRAINING_FIELDS = ("destination", "input", "webhook", "webhook_events_filter")


async def read_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request("Request body must be valid JSON") from exc
    if not isinstance(body, dict):
        raise validation_problem([invalid_type("(root)", "object", body)])
    return body


def check_body_fields(body: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    """422 "Input validation failed" for a missing required member or any member the request schema
    does not declare, all problems at once, before anything is looked up or created."""
    problems = [
        {"type": "required", "field": "", "description": f"{name} is required"}
        for name in required
        if name not in body
    ]
    problems += [
        {
            "type": "additional_property_not_allowed",
            "field": "",
            "description": f"Additional property {name} is not allowed",
        }
        for name in body
        if name not in allowed
    ]
    for name, expected, kind in (("stream", "boolean", bool), ("destination", "string", str)):
        if name in allowed and name in body and not isinstance(body[name], kind):
            problems.append(invalid_type(name, expected, body[name]))
    if problems:
        raise validation_problem(problems)


def invalid_type(field: str, expected: str, value: Any) -> dict[str, str]:
    given = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), "null" if value is None else "object"
    )
    return {
        "type": "invalid_type",
        "field": field,
        "description": f"Invalid type. Expected: {expected}, given: {given}",
    }


def _sendable_webhook(webhook: Any) -> bool:
    """An http(s) URL the sender's httpx client can post to. Anything it could not send (a final
    newline, a bad IDNA label) is refused here, at create, rather than failing at delivery."""
    if not isinstance(webhook, str) or not is_uri(webhook, ("http", "https")):
        return False
    try:
        httpx.Request("POST", httpx.URL(webhook))
    except (httpx.InvalidURL, ValueError):
        return False
    return True


def webhook_fields(body: dict[str, Any]) -> tuple[str | None, frozenset[str]]:
    webhook = body.get("webhook")
    if webhook is not None and not _sendable_webhook(webhook):
        raise validation_problem(
            [{"type": "format", "field": "webhook", "description": "Does not match format 'uri'"}]
        )
    events = body.get("webhook_events_filter")
    if events is None:
        return webhook, frozenset(WEBHOOK_EVENTS)
    if not isinstance(events, list) or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events):
        choices = ", ".join(f'"{e}"' for e in WEBHOOK_EVENTS)
        raise validation_problem(
            [
                {
                    "type": "enum",
                    "field": "webhook_events_filter",
                    "description": f"must be one of the following: {choices}",
                }
            ]
        )
    return webhook, frozenset(events)


def cancel_after(request: Request) -> float | None:
    raw = request.headers.get("cancel-after")
    if raw is None:
        return None
    text = raw.strip()
    match = _DURATION.fullmatch(text)
    if text.isascii() and text.isdigit():  # str.isdigit alone takes `²`, which float() refuses
        seconds = float(text)
    elif match and text:
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    else:
        raise bad_request("Cancel-After must be a duration such as 30s, 5m or 1h30m45s")
    if seconds < 5:
        raise bad_request("Cancel-After must be at least 5 seconds")
    return seconds


def prefer_wait(request: Request) -> tuple[float, str] | None:
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            if not value:
                return 60.0, "wait"
            if value.strip().isascii() and value.strip().isdigit() and 1 <= int(value) <= 60:
                return float(value), f"wait={int(value)}"
            raise bad_request("Prefer: wait must be between 1 and 60 seconds")
    return None


async def create_job(
    request: Request,
    body: dict[str, Any],
    *,
    kind: str,
    model: Model,
    version: Version,
    destination: str | None = None,
    via_models_route: bool = False,
) -> JSONResponse:
    sandbox = request.app.state.sandbox
    wait = prefer_wait(request)
    deadline_seconds = cancel_after(request)
    webhook, events = webhook_fields(body)
    raw_input = body.get("input", {})
    schema_name = "TrainingInput" if kind == "training" else "Input"
    checked = check_input(raw_input, version.openapi_schema, schema_name)
    late = None
    if checked.invalid_fields:
        if sandbox.config.input_validation == "create" and not sandbox.faults.late_validation:
            raise validation_problem(checked.invalid_fields)
        late = checked.invalid_fields
    job: Job = sandbox.submit(
        {
            "id": new_id(),
            "kind": kind,
            "model": model.ref,
            "version": version.id,
            "input": raw_input if isinstance(raw_input, dict) else {},
            "webhook": webhook,
            "events": events,
            "destination": destination,
            "late_validation_errors": late,
            "unknown_inputs": checked.unknown,
            "created_via_models_route": via_models_route,
        },
        with_defaults(checked.accepted, version.openapi_schema, schema_name),
        cancel_after=deadline_seconds,
    )
    model.run_count += 1
    headers: dict[str, str] = {}
    if wait is not None:
        seconds, applied = wait
        headers["Preference-Applied"] = applied
        try:
            await asyncio.wait_for(job.done.wait(), timeout=seconds)
        except TimeoutError:
            pass
    quirk = kind == "training" and sandbox.config.training_create_urls_quirk
    rendered = job_json(job, sandbox.config.base_url, urls_collection="predictions" if quirk else None)
    return JSONResponse(rendered, status_code=201, headers=headers)
