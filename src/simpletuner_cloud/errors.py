"""The one error root. Every failure a user can meet is a `CloudError` with a stable `code`,
a human `message` and a `hint`; the API maps it to `{"error": {...}}`, the CLI prints it."""

from __future__ import annotations

from typing import Any, ClassVar

# code -> HTTP status. One table, so routers never choose statuses themselves.
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "validation_error": 422,
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "origin_forbidden": 403,
    "unsupported_media_type": 415,
    "conflict": 409,
    "idempotency_conflict": 409,
    "payload_too_large": 413,
    "token_missing": 400,
    "token_invalid_format": 422,
    "token_invalid": 422,  # Replicate refused the token; 401 is only for this server's own login
    "provider_unavailable": 502,
    "provider_error": 502,
    "provider_not_found": 404,  # Replicate has no such model, version, file or prediction
    "provider_invalid_input": 422,
    "server_stopping": 503,
    "rate_limited": 429,
    "invalid_signature": 401,
    "webhook_forbidden": 403,
    "upload_too_large": 413,
    "dataset_empty": 422,
    "dataset_missing": 422,
    "dataset_unsupported": 422,
    "dataset_changed": 409,
    "upload_not_found": 404,
    "config_missing": 404,
    "config_invalid": 422,
    "consent_required": 428,
    "consent_denied": 403,
    "trainer_input_unknown": 422,
    "trainer_input_invalid": 422,
    "cost_limit_exceeded": 402,
    "invalid_transition": 409,
    "job_not_found": 404,
    "cursor_invalid": 422,
    "server_not_running": 503,
    "internal_error": 500,
    "provider_timeout": 504,
    # The job flow
    "trainer_argument_unknown": 422,
    "trainer_argument_invalid": 422,
    "hardware_unknown": 422,
    "delivery_required": 422,
    "hf_token_missing": 422,
    "cost_limit_unavailable": 503,
    "job_active": 409,
    # The webhook receiver, its flight recorder and the self-test
    "signature_missing": 401,
    "signature_invalid": 401,
    "timestamp_out_of_tolerance": 401,
    "ip_not_allowed": 403,
    "webhook_body_invalid": 400,
    "webhook_secret_unavailable": 503,
    "delivery_not_found": 404,
    "delivery_not_replayable": 409,
    "public_url_missing": 422,
    # Results delivery: publishing settings, delivery plans, the ledger and artifacts
    "s3_not_configured": 422,
    "s3_keys_missing": 422,
    "hf_token_invalid": 422,
    "hf_token_invalid_format": 422,
    "hub_repo_missing": 404,
    "delivery_needs_validation": 422,
    "job_delivery_not_found": 404,
    "delivery_not_retryable": 409,
    "artifact_not_found": 404,
    "artifact_unavailable": 502,
}


class CloudError(Exception):
    """Base of every expected failure. Subclasses fix `code`; callers give message and hint."""

    code: ClassVar[str] = "bad_request"
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 400)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class NotFound(CloudError):
    code = "not_found"


class Unauthorized(CloudError):
    code = "unauthorized"
    default_hint = (
        "Open the login link that `simpletuner server` printed, or send "
        "`Authorization: Bearer <admin token>` (the token is in ~/.simpletuner/cloud/admin_token)."
    )


class Forbidden(CloudError):
    code = "forbidden"


class ValidationFailed(CloudError):
    code = "validation_error"


class Conflict(CloudError):
    code = "conflict"


class InvalidTransition(CloudError):
    code = "invalid_transition"


class ProviderUnavailable(CloudError):
    code = "provider_unavailable"
    default_hint = "Check https://replicate.statuspage.io/ and your network or proxy settings, then retry."
