"""Consent modes: deny refuses uploads, ask needs consent in the request, allow and remote jobs pass."""

from __future__ import annotations

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.consent import check_consent


@pytest.mark.parametrize(
    ("mode", "given", "needs_upload"),
    [("allow", False, True), ("ask", True, True), ("deny", False, False), ("ask", False, False)],
)
def test_allowed(mode: str, given: bool, needs_upload: bool) -> None:
    check_consent(mode, given, needs_upload)


@pytest.mark.parametrize(
    ("mode", "given", "code", "status"),
    [("deny", True, "consent_denied", 403), ("deny", False, "consent_denied", 403),
     ("ask", False, "consent_required", 428)],
)  # fmt: skip
def test_refused(mode: str, given: bool, code: str, status: int) -> None:
    with pytest.raises(CloudError) as caught:
        check_consent(mode, given, needs_upload=True)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.hint


def test_unknown_mode() -> None:
    with pytest.raises(CloudError) as caught:
        check_consent("maybe", True, True)
    assert caught.value.code == "validation_error"
