"""Data-upload consent, enforced on the server: the provider setting `ask | allow | deny` against whether
the job needs an upload and whether the submit request carried `"consent": true`."""

from __future__ import annotations

from typing import Literal

from simpletuner_cloud.errors import CloudError

ConsentMode = Literal["ask", "allow", "deny"]
CONSENT_MODES: tuple[ConsentMode, ...] = ("ask", "allow", "deny")
DEFAULT_CONSENT_MODE: ConsentMode = "ask"


def check_consent(mode: str, consent_given: bool, needs_upload: bool) -> None:
    """Raises `consent_denied` or `consent_required`; jobs that upload nothing always pass."""
    if mode not in CONSENT_MODES:
        raise CloudError(
            f"Unknown data consent setting `{mode}`.",
            code="validation_error",
            hint="Use ask, allow or deny.",
        )
    if not needs_upload or mode == "allow":
        return
    if mode == "deny":
        raise CloudError(
            "Uploading training data is turned off (data consent: deny), and this job needs its images "
            "uploaded to Replicate.",
            code="consent_denied",
            hint="Change data consent to ask or allow in Cloud -> Settings, or use a remote dataset "
            "(a Hugging Face dataset with `type: huggingface`) so nothing is uploaded.",
        )
    if not consent_given:
        raise CloudError(
            "This job uploads your training images to Replicate's upload servers; confirm it first.",
            code="consent_required",
            hint="Review what would be sent with `simpletuner cloud data preview` (or "
            '`POST /api/cloud/data-consent/preview`), then send the request again with "consent": true '
            "(`--consent` on the command line).",
        )
