"""The CLI's server client without a server: ids built into paths stay one segment, and the server's
hints name CLI commands a user can paste."""

from __future__ import annotations

import pytest
import typer

from simpletuner_cloud.cli.api_client import api_path, cli_hint
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.consent import check_consent
from simpletuner_cloud.services.publishing import TUNNEL_HINT
from simpletuner_cloud.services.webhook_signatures import SELF_TEST_HINT

JOBS = "/api/cloud/jobs"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("job_01abc", "/api/cloud/jobs/job_01abc"),
        ("../providers/replicate/token", "/api/cloud/jobs/..%2Fproviders%2Freplicate%2Ftoken"),
        ("..", "/api/cloud/jobs/%2E%2E"),  # httpx would resolve a bare dot segment away
        (".", "/api/cloud/jobs/%2E"),
        ("a b?c#d%", "/api/cloud/jobs/a%20b%3Fc%23d%25"),
        (7, "/api/cloud/jobs/7"),
    ],
)
def test_every_id_is_one_encoded_path_segment(value: object, path: str) -> None:
    assert api_path(JOBS, value) == path


def test_the_segments_after_the_id_are_kept() -> None:
    assert api_path(JOBS, "job/x", "logs") == "/api/cloud/jobs/job%2Fx/logs"


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_id_is_a_usage_error(value: str) -> None:
    with pytest.raises(typer.BadParameter, match="empty"):
        api_path(JOBS, value)


def test_a_settings_body_becomes_the_settings_set_command() -> None:
    assert cli_hint(TUNNEL_HINT) == (
        "Start a tunnel (`ngrok http 8080` or `cloudflared tunnel --url http://localhost:8080`) and save its "
        "https URL as the public URL (Cloud -> Settings, or "
        "`simpletuner cloud provider settings set public_url=https://...`)."
    )


def test_nested_and_non_text_values_become_dotted_json_assignments() -> None:
    hint = 'Send PUT /api/cloud/providers/replicate with {"cost_limit": {"enabled": true, "amount": 50}}.'
    assert cli_hint(hint) == (
        "Send `simpletuner cloud provider settings set cost_limit.enabled=true cost_limit.amount=50`."
    )


def test_a_route_and_its_command_side_by_side_name_the_command_once() -> None:
    with pytest.raises(CloudError) as refused:
        check_consent("ask", consent_given=False, needs_upload=True)
    hint = cli_hint(refused.value.hint)
    assert hint.count("simpletuner cloud data preview") == 1, hint
    assert cli_hint(SELF_TEST_HINT).endswith("To test the whole path with a signed event, run "
                                             "`simpletuner cloud webhooks test`.")  # fmt: skip


def test_a_route_without_a_command_is_left_as_it_is() -> None:
    hint = 'Set one in Publishing: PUT /api/cloud/publishing with {"s3": {"bucket": "..."}}.'
    assert cli_hint(hint) == hint
