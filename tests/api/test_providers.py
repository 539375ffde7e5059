"""`/api/cloud/providers...` against the sandbox: the server is pointed at a standalone sandbox with
REPLICATE_API_TOKEN and SIMPLETUNER_REPLICATE_BASE_URL, exactly as a user points it at Replicate."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.replicate.errors import TOKEN_INVALID_HINT, TOKEN_MISSING_HINT
from simpletuner_cloud.replicate.factory import ENV_TOKEN_HINT, NO_PREFIX, UNUSABLE_TOKEN
from simpletuner_cloud.replicate.retries import RetryPolicy
from simpletuner_cloud.services.provider import (
    ENV_WINS_NOTE,
    ProviderRuntime,
    provider_timeout,
    validate_deadline,
)
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.settings import load_settings
from tests.api.conftest import remote_client
from tests.support.provider_sandbox import (
    MASKED_SANDBOX_TOKEN,
    RunningSandbox,
    http_proxy,
    standalone_sandbox,
)

ACCOUNT = {"username": "sandbox", "name": "Sandbox (offline Replicate emulator)", "type": "user"}
WRONG_TOKEN = "r8_" + "w" * 37


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with standalone_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(autouse=True)
def _point_at_sandbox(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIMPLETUNER_REPLICATE_BASE_URL", sandbox.url)
    monkeypatch.setenv("SIMPLETUNER_STATUS_PAGE_URL", sandbox.status_url)
    yield
    sandbox.faults(
        server_errors={"count": 0}, latency={"seconds": 0}, status_page={"mode": "ok", "indicator": "none"}
    )


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    application = create_app(load_settings())
    application.state.provider_runtime = ProviderRuntime(
        sleep=_no_sleep, retry_policy=RetryPolicy(max_attempts=2)
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def with_env_token(sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REPLICATE_API_TOKEN", sandbox.token)
    return sandbox.token


def expected_provider(**changes: Any) -> dict[str, Any]:
    entry = {
        "id": "replicate",
        "name": "Replicate",
        "configured": True,
        "token_source": "env",
        "token_check": "valid",
        "ready": True,
        "sandbox": False,
        "banner": None,
        "webhook_url": None,
        "hardware": "l40s",
        "model": "simpletuner/advanced-trainer",
        "not_ready_reason": None,
        "warning": "No public URL: jobs are followed by polling until you set one.",
    }
    return {"providers": [{**entry, **changes}]}


async def test_providers_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/providers")
    assert response.status_code == 200
    assert response.json() == expected_provider(
        configured=False,
        token_source=None,
        token_check=None,
        ready=False,
        not_ready_reason="REPLICATE_API_TOKEN not set",
    )


async def test_providers_with_env_token(client: httpx.AsyncClient, with_env_token: str) -> None:
    assert (await client.get("/api/cloud/providers")).json() == expected_provider()


async def test_providers_with_a_rejected_token_are_not_ready(
    client: httpx.AsyncClient, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", WRONG_TOKEN)
    not_ready = expected_provider(token_check="invalid", ready=False, not_ready_reason="Invalid token")
    assert (await client.get("/api/cloud/providers")).json() == not_ready
    sandbox.faults(server_errors={"count": 1, "status": 503})
    assert (await client.get("/api/cloud/providers")).json() == not_ready  # remembered: no new call
    assert sandbox.faults()["server_errors"]["count"] == 1


async def test_providers_when_replicate_is_down_are_unchecked_not_refused(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    sandbox.faults(server_errors={"count": 1, "status": 503})
    answer = (await client.get("/api/cloud/providers")).json()
    assert answer == expected_provider(token_check="unknown")
    assert sandbox.faults()["server_errors"]["count"] == 0  # one attempt, no retries on a page load


async def test_validate_without_token_is_the_seed_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "token_missing",
            "message": "REPLICATE_API_TOKEN not set",
            "hint": TOKEN_MISSING_HINT,
        }
    }


async def test_validate_with_env_token(client: httpx.AsyncClient, with_env_token: str) -> None:
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "account": ACCOUNT,
        "token_source": "env",
        "token": MASKED_SANDBOX_TOKEN,
        "sandbox": False,
    }


async def test_validate_with_a_rejected_token(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", WRONG_TOKEN)
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 422  # not 401: that is this server's own login failing
    assert response.json() == {
        "error": {
            "code": "token_invalid",
            "message": "Invalid token",
            "hint": TOKEN_INVALID_HINT,
            "details": {
                "method": "GET",
                "path": "/v1/account",
                "client_request_id": ANY,
                "provider_status": 401,
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
            },
        }
    }
    assert WRONG_TOKEN not in response.text


async def test_validate_when_replicate_fails(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    sandbox.faults(
        server_errors={"count": 2, "status": 503, "html": True}, status_page={"indicator": "major"}
    )
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "code": "provider_unavailable",
            "message": "Replicate is failing: HTTP 503 on GET /v1/account. "
            "Replicate's status page says: Partial System Outage (major).",
            "hint": "Check https://replicate.statuspage.io/ and your network or proxy settings, then retry.",
            "details": {
                "method": "GET",
                "path": "/v1/account",
                "client_request_id": ANY,
                "provider_status": 503,
                "status_page": {"indicator": "major", "description": "Partial System Outage"},
            },
        }
    }


async def test_save_token_trims_validates_masks_and_writes_0600(
    client: httpx.AsyncClient, app: FastAPI, sandbox: RunningSandbox
) -> None:
    response = await client.put(
        "/api/cloud/providers/replicate/token", json={"api_token": f"  {sandbox.token}\n"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "saved": True,
        "token": MASKED_SANDBOX_TOKEN,
        "account": ACCOUNT,
        "token_source": "saved",
        "note": None,
    }
    path: Path = app.state.settings.replicate_token_path
    assert path.read_text() == sandbox.token  # exactly the trimmed token: no newline, no spaces
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    validated = await client.get("/api/cloud/providers/replicate/validate")
    assert validated.json() == {
        "valid": True,
        "account": ACCOUNT,
        "token_source": "saved",
        "token": MASKED_SANDBOX_TOKEN,
        "sandbox": False,
    }

    deleted = await client.delete("/api/cloud/providers/replicate/token")
    assert deleted.json() == {"deleted": True, "token_source": None, "token": None, "note": None}
    assert not path.exists()
    again = await client.delete("/api/cloud/providers/replicate/token")
    assert again.json()["deleted"] is False


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("sk-notreplicate\n", NO_PREFIX),
        ("R8_" + "a" * 37, NO_PREFIX),
        ("r8_two words" + "a" * 28, UNUSABLE_TOKEN),
        ("r8_line\nbreak" + "a" * 26, UNUSABLE_TOKEN),
        ("r8_é" + "a" * 36, UNUSABLE_TOKEN),  # not ASCII: could never go in a header (was a 500)
        (" \n ", NO_PREFIX),
        # A megabyte "token" was sent to Replicate as a header before the length cap.
        ("r8_" + "a" * 1_000_000, "Token is 1000003 characters long; Replicate tokens are 40, and at "
         "most 128 are accepted."),
    ],
)  # fmt: skip
async def test_save_token_refuses_a_bad_format(
    client: httpx.AsyncClient, app: FastAPI, raw: str, problem: str
) -> None:
    response = await client.put("/api/cloud/providers/replicate/token", json={"api_token": raw})
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "token_invalid_format",
            "message": f"That does not look like a Replicate API token. {problem}",
            "hint": TOKEN_INVALID_HINT,
            "details": {"source": None, "fields": [{"field": "api_token", "message": problem}]},
        }
    }
    assert not app.state.settings.replicate_token_path.exists()


async def test_saving_replaces_the_old_token_file_atomically(
    client: httpx.AsyncClient, app: FastAPI, sandbox: RunningSandbox
) -> None:
    """A new file is renamed over the old one (a new inode): a crash mid-write leaves the old token
    whole, never a truncated one."""
    path: Path = app.state.settings.replicate_token_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(WRONG_TOKEN)
    old_inode = path.stat().st_ino
    response = await client.put("/api/cloud/providers/replicate/token", json={"api_token": sandbox.token})
    assert response.status_code == 200
    assert path.read_text() == sandbox.token
    assert path.stat().st_ino != old_inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("r8_pasted\nacross two lines" + "a" * 14, UNUSABLE_TOKEN),
        ("sk-" + "a" * 37, NO_PREFIX),
        ("r8_" + "a" * 200, "Token is 203 characters long; Replicate tokens are 40, and at most 128 are "
         "accepted."),
    ],
)  # fmt: skip
async def test_a_malformed_env_token_is_refused_at_once_everywhere(
    client: httpx.AsyncClient,
    sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    problem: str,
) -> None:
    """Checked locally like a saved token: the seed's message at once, not a 3 s network error; and
    Replicate is never asked (the sandbox would count the failure it was told to inject)."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", token)
    sandbox.faults(server_errors={"count": 1, "status": 503})
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "token_invalid_format",
            "message": f"Invalid token in REPLICATE_API_TOKEN. {problem}",
            "hint": ENV_TOKEN_HINT,
            "details": {"source": "env"},
        }
    }
    listed = (await client.get("/api/cloud/providers")).json()
    assert listed == expected_provider(
        token_check="invalid",
        ready=False,
        not_ready_reason=f"Invalid token in REPLICATE_API_TOKEN. {problem}",
    )
    assert sandbox.faults()["server_errors"]["count"] == 1  # no request reached "Replicate"


async def test_save_token_refused_by_replicate_is_not_saved(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.put("/api/cloud/providers/replicate/token", json={"api_token": WRONG_TOKEN})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Invalid token"
    assert not app.state.settings.replicate_token_path.exists()
    assert WRONG_TOKEN not in response.text


async def test_env_token_wins_and_the_answer_says_so(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    response = await client.put("/api/cloud/providers/replicate/token", json={"api_token": sandbox.token})
    assert response.json() == {
        "saved": True,
        "token": MASKED_SANDBOX_TOKEN,
        "account": ACCOUNT,
        "token_source": "env",
        "note": ENV_WINS_NOTE,
    }
    deleted = await client.delete("/api/cloud/providers/replicate/token")
    assert deleted.json() == {
        "deleted": True,
        "token_source": "env",
        "token": MASKED_SANDBOX_TOKEN,
        "note": "REPLICATE_API_TOKEN is set in the environment and takes precedence.",
    }


async def test_versions_newest_first_latest_unless_pinned(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    first, second = sandbox.version_list()
    newest, older = first["id"], second["id"]
    response = await client.get("/api/cloud/providers/replicate/versions")
    assert response.status_code == 200
    assert response.json() == {
        "model": "simpletuner/advanced-trainer",
        "pinned": None,
        "pinned_exists": None,
        "selected": newest,
        "warning": None,
        "versions": [
            {"id": newest, "created_at": first["created_at"], "cog_version": "0.16.2", "selected": True},
            {"id": older, "created_at": second["created_at"], "cog_version": "0.14.3", "selected": False},
        ],
    }
    assert first["created_at"] > second["created_at"]
    await client.put("/api/cloud/providers/replicate", json={"version": older})
    pinned = (await client.get("/api/cloud/providers/replicate/versions")).json()
    assert (pinned["pinned"], pinned["pinned_exists"], pinned["selected"]) == (older, True, older)
    assert [v["selected"] for v in pinned["versions"]] == [False, True]
    assert pinned["warning"] is None


async def test_versions_follow_the_hardware_model(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    await client.put("/api/cloud/providers/replicate", json={"hardware": "a100"})
    answer = (await client.get("/api/cloud/providers/replicate/versions")).json()
    assert answer["model"] == "simpletuner/advanced-trainer-a100"
    assert [v["id"] for v in answer["versions"]] == sandbox.versions("simpletuner/advanced-trainer-a100")


@pytest.mark.parametrize("how", ["typo", "hardware-changed"])
async def test_a_pin_that_is_not_a_version_of_the_model_is_flagged(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str, how: str
) -> None:
    """Decision: flagged in the versions answer (with the list to choose from), not an error."""
    if how == "typo":
        pin, model = "f" * 64, "simpletuner/advanced-trainer"
        await client.put("/api/cloud/providers/replicate", json={"version": pin})
    else:  # pinned on L40S, then moved to A100, whose trainer is another model
        pin, model = sandbox.versions()[0], "simpletuner/advanced-trainer-a100"
        await client.put("/api/cloud/providers/replicate", json={"version": pin, "hardware": "a100"})
    response = await client.get("/api/cloud/providers/replicate/versions")
    assert response.status_code == 200
    assert response.json() == {
        "model": model,
        "pinned": pin,
        "pinned_exists": False,
        "selected": None,
        "warning": f"The pinned version {pin} is not a version of {model} (or this account may not "
        "use it), so jobs cannot start with it: pin one of the versions listed, or set `version` to "
        "null for the latest.",
        "versions": [
            {"id": v["id"], "created_at": v["created_at"], "cog_version": v["cog_version"], "selected": False}
            for v in sandbox.version_list(model)
        ],
    }


async def test_the_token_never_leaks(
    client: httpx.AsyncClient, app: FastAPI, sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Save, validate, list, fail and delete: the token is in no answer, log record or database byte."""
    caplog.set_level("DEBUG")
    answers = [await client.put("/api/cloud/providers/replicate/token", json={"api_token": sandbox.token})]
    for path in ("", "/replicate", "/replicate/validate", "/replicate/versions", "/replicate/billing"):
        answers.append(await client.get(f"/api/cloud/providers{path}"))
    sandbox.faults(server_errors={"count": 2, "status": 500})  # both attempts of one call
    answers.append(await client.get("/api/cloud/providers/replicate/validate"))
    answers.append(await client.put("/api/cloud/providers/replicate/token", json={"api_token": WRONG_TOKEN}))
    answers.append(
        await client.put("/api/cloud/providers/replicate/token", json={"api_token": "bad " + WRONG_TOKEN})
    )
    answers.append(await client.delete("/api/cloud/providers/replicate/token"))
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 200, 502, 422, 422, 200]
    for secret in (sandbox.token, WRONG_TOKEN, sandbox.token[3:], WRONG_TOKEN[3:]):
        for answer in answers:
            assert secret not in answer.text
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
        database = app.state.settings.database_path
        for path in database.parent.glob(database.name + "*"):  # the WAL and shm files too
            assert secret.encode() not in path.read_bytes()


async def test_a_pin_older_than_the_listed_pages_is_fetched_and_selected(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Only a few pages of versions are listed; an older pin is looked up on its own, listed last."""
    newest, pin = {"id": "b" * 64, "created_at": "2025-02-01T00:00:00Z", "cog_version": "0.16.2"}, "a" * 64
    asked: list[str] = []

    def replicate(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith(f"/versions/{pin}"):
            return httpx.Response(
                200, json={"id": pin, "created_at": "2024-01-01T00:00:00Z", "cog_version": "0.9.0"}
            )
        return httpx.Response(200, json={"next": None, "previous": None, "results": [newest]})

    app.state.provider_runtime = ProviderRuntime(
        transport=httpx.MockTransport(replicate), environ={"REPLICATE_API_TOKEN": WRONG_TOKEN}
    )
    await client.put("/api/cloud/providers/replicate", json={"version": pin})
    answer = (await client.get("/api/cloud/providers/replicate/versions")).json()
    assert answer == {
        "model": "simpletuner/advanced-trainer",
        "pinned": pin,
        "pinned_exists": True,
        "selected": pin,
        "warning": None,
        "versions": [
            {**newest, "selected": False},
            {"id": pin, "created_at": "2024-01-01T00:00:00Z", "cog_version": "0.9.0", "selected": True},
        ],
    }
    assert asked == [
        "/v1/models/simpletuner/advanced-trainer/versions",
        f"/v1/models/simpletuner/advanced-trainer/versions/{pin}",
    ]


async def test_the_proxy_url_setting_carries_validate(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str, tmp_path: Path
) -> None:
    with http_proxy(tmp_path) as proxy:
        saved = await client.put("/api/cloud/providers/replicate", json={"proxy_url": proxy.url})
        assert saved.json()["proxy_url"] == proxy.url
        assert (await client.get("/api/cloud/providers/replicate/validate")).status_code == 200
        assert proxy.carried("/v1/account - 200")


async def test_the_http_timeout_setting_bounds_each_call(
    client: httpx.AsyncClient, sandbox: RunningSandbox, with_env_token: str
) -> None:
    await client.put("/api/cloud/providers/replicate", json={"http_timeout": 0.1})
    sandbox.faults(latency={"seconds": 0.6, "count": 2, "route": "/v1/account"})
    try:
        response = await client.get("/api/cloud/providers/replicate/validate")
    finally:
        sandbox.faults(latency={"seconds": 0})
    assert response.status_code == 504
    assert response.json()["error"] == provider_timeout(0.1).to_body()["error"]


@contextmanager
def hung_replicate() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


async def test_validate_when_replicate_hangs_says_it_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a hung Replicate kept Validate waiting 30 s x 4 attempts, then said "unavailable"."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", WRONG_TOKEN)
    with hung_replicate() as url:
        app = create_app(load_settings(replicate_base_url=url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
                await client.put("/api/cloud/providers/replicate", json={"http_timeout": 0.5})
                response = await client.get("/api/cloud/providers/replicate/validate")
    assert response.status_code == 504
    assert response.json() == {
        "error": {
            "code": "provider_timeout",
            "message": "Replicate did not answer within 0.5 s.",
            "hint": "Replicate may be slow or unreachable from here: check https://replicate.statuspage.io/, "
            "your network and the proxy (`proxy_url` in the provider settings), then retry. `http_timeout` "
            "sets how long to wait (validation waits at most 10 s).",
            "details": {"timeout_seconds": 0.5},  # the configured timeout, not the 30 s default
        }
    }


def test_validation_waits_at_most_ten_seconds_whatever_http_timeout_says() -> None:
    assert validate_deadline(ReplicateSettings()) == 10.0  # http_timeout defaults to 30 s per call
    assert validate_deadline(ReplicateSettings(http_timeout=2)) == 2.0


async def test_a_rejected_replicate_token_is_not_a_failed_login(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI shows its login warning on 401: Replicate refusing the token must not look like that."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", WRONG_TOKEN)
    rejected = await client.get("/api/cloud/providers/replicate/validate")
    async with remote_client(app) as remote:
        login = await remote.get(
            "/api/cloud/providers/replicate/validate", headers={"Authorization": "Bearer wrong"}
        )
    assert (rejected.status_code, rejected.json()["error"]["code"]) == (422, "token_invalid")
    assert (login.status_code, login.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("proxy", ["http://a\nb:3128", "notaurl", "http://proxy:99999x"])
async def test_an_unusable_proxy_variable_is_a_network_error_not_a_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, with_env_token: str, proxy: str
) -> None:
    """HTTP_PROXY is read from the environment, so it is never validated at a PUT: a value httpx cannot
    use made Validate, the provider list and the always-200 status page answer 500."""
    monkeypatch.setenv("HTTP_PROXY", proxy)  # the sandbox is http://
    validated = await client.get("/api/cloud/providers/replicate/validate")
    assert validated.status_code == 502
    error = validated.json()["error"]
    assert (error["code"], error["details"]["network_error"]) == ("provider_unavailable", "InvalidProxy")
    assert error["message"] == (
        "Could not reach Replicate at 127.0.0.1: the proxy for http:// requests (the proxy_url setting, or "
        "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) is not a valid proxy URL"
    )
    status = await client.get("/api/cloud/system-status")
    assert (status.status_code, status.json()["indicator"]) == (200, "unknown")
    assert status.json()["reason"] == "could not reach the status page (InvalidProxy)"
    listed = await client.get("/api/cloud/providers")
    assert (listed.status_code, listed.json()["providers"][0]["token_check"]) == (200, "unknown")
