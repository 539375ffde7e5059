"""Schemathesis over the app's own OpenAPI document: every operation, called in-process through ASGI,
on a server with a temporary state root whose provider is the sandbox (served on loopback, so provider
calls take the real network path: proxies, timeouts, retries). Any 5xx, or any answer (errors
included) that does not match the schema it declares, fails.

The bug class this guards against is "accepted with 200, then a 500 somewhere else": after every
accepted settings change the routes that read the settings are called too, and must still answer.

Bounded for CI: 25 examples per operation, derandomized (the same cases every run), no deadline; the
stateful run follows the links schemathesis infers for 10 scenarios of up to 6 steps.
Excluded: `GET /api/cloud/events`, the live job event stream, which by design never ends."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app
from simpletuner_cloud.security.admin_token import ensure_admin_token
from simpletuner_cloud.services.datasets import install_example
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import free_port, live_server

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.content_type_conformance,
]
# Routes whose answers never end (Server-Sent Events kept open for live updates).
ENDLESS_STREAMS = ["/api/cloud/events"]
SETTINGS_URL = "/api/cloud/providers/replicate"
# What reads the provider settings; each must still answer after any accepted PUT.
SETTINGS_READERS = [
    "/api/cloud/providers",
    SETTINGS_URL,
    f"{SETTINGS_URL}/validate",
    f"{SETTINGS_URL}/versions",
    f"{SETTINGS_URL}/billing",
    "/api/cloud/system-status",
]
# A 5xx a reader may rightly give after a settings change: Replicate (here, the sandbox) unreachable
# through a fuzzed proxy, or slower than a fuzzed `http_timeout`. Never `internal_error`.
PROVIDER_FAILURES = {502: {"provider_unavailable", "provider_error"}, 504: {"provider_timeout"}}
DEFAULT_SETTINGS = dict.fromkeys(
    ("model", "version", "hardware", "public_url", "webhook_allowed_ips", "trusted_proxies",
     "require_signature", "cost_limit", "http_timeout", "proxy_url", "data_consent")
)  # fmt: skip


def build_app(home: Path) -> FastAPI:
    settings = load_settings(home=home, worker_interval=1.0)
    app = create_app(settings)
    ensure_admin_token(settings)
    install_example(settings)  # so the configs list has an entry for the links to follow
    return app


# Built when the module is collected: schemathesis reads the operations to parametrize from it then
# (its fixture-based loader does not work with this pytest). The app's lifespan starts with the first
# call; `_serve_the_sandbox` points its provider at a sandbox for the module's tests.
HOME = Path(tempfile.mkdtemp(prefix="schemathesis-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)  # also when the module is collected, not run
APP = build_app(HOME)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path=ENDLESS_STREAMS)


@pytest.fixture(scope="module", autouse=True)
def _serve_the_sandbox() -> Iterator[None]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = create_sandbox_app(
        SandboxConfig(public_base_url=url, data_dir=HOME / "sandbox", status_page_timeout_seconds=1.0)
    )
    APP.state.settings.replicate_base_url = url
    APP.state.settings.status_page_url = f"{url}/status"
    # The Hub checks and read-backs go to the sandbox's Hub routes, never to huggingface.co.
    APP.state.provider_runtime.environ = {
        "REPLICATE_API_TOKEN": sandbox.state.sandbox.config.token,
        "HF_ENDPOINT": f"{url}/hub",
    }
    with live_server(sandbox, port=port):
        yield
        schemathesis.python.asgi.shutdown_lifespans()  # the app's lifespan ran in schemathesis's loop
    shutil.rmtree(HOME, ignore_errors=True)


def auth_headers() -> dict[str, str]:
    # schemathesis calls as `testserver`, which is not the local user: the admin token lets it in.
    return {"Authorization": f"Bearer {APP.state.settings.admin_token_path.read_text().strip()}"}


def call(case: Any, method: str, path: str, body: Any = None) -> Any:
    other = case.operation.schema[path][method].Case(**({"body": body} if body is not None else {}))
    return other.call(headers=auth_headers())


def reset_provider_settings(case: Any) -> None:
    """Each case starts from the default provider settings: a fuzzed `proxy_url` or `http_timeout`
    left by one case would make the next case's provider calls fail upstream (a 502 or 504 that is
    the right answer for those settings, not a bug)."""
    assert call(case, "PUT", SETTINGS_URL, DEFAULT_SETTINGS).status_code == 200


def check_settings_readers(case: Any) -> None:
    for path in SETTINGS_READERS:
        response = call(case, "GET", path)
        code = response.json().get("error", {}).get("code") if response.status_code >= 500 else None
        assert response.status_code < 500 or code in PROVIDER_FAILURES.get(response.status_code, ()), (
            f"after PUT {SETTINGS_URL} {case.body!r}, GET {path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_matches_its_schema(case: Any) -> None:
    reset_provider_settings(case)
    response = case.call_and_validate(headers=auth_headers(), checks=CHECKS)
    if (case.method, case.path) == ("PUT", SETTINGS_URL) and response.status_code == 200:
        check_settings_readers(case)


class LinkedCalls(schema.as_state_machine()):  # type: ignore[misc]
    """Stateful: answers feed later calls along the links schemathesis infers (a config listed, then
    read; an upload started, then polled; a job submitted, then read, cancelled, deleted)."""

    def before_call(self, case: Any) -> None:
        reset_provider_settings(case)

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"headers": auth_headers()}

    def validate_response(
        self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
    ) -> None:
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


TestLinkedCalls = LinkedCalls.TestCase
TestLinkedCalls.settings = settings(
    max_examples=10,
    stateful_step_count=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    # No shrinking: the app keeps its state (jobs, uploads) between scenarios, so a replayed scenario
    # draws differently and hypothesis would report "flaky data generation" instead of the failure.
    phases=[Phase.explicit, Phase.generate],
)
