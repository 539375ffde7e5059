"""`simpletuner server --sandbox` set up for job tests: fast polling, a short lease, a sandbox trainer
that takes a blink, the example environment installed; calls into its sandbox; and the worker of a
second server on the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from simpletuner_cloud.services.datasets import install_example
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.store.database import Database
from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server

SUBMIT = "/api/cloud/jobs/submit"
EXAMPLE = {"config": "flux-lora-example", "consent": True, "delivery": "none"}


@contextmanager
def job_server(steps: int = 20, **settings: Any) -> Iterator[tuple[httpx.Client, FastAPI]]:
    settings = {"poll_seconds": 0.2, "log_poll_seconds": 0.2, "job_lease_seconds": 5, **settings}
    with sandbox_mode_server(**settings) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.02, 0.0, steps
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            yield http, app


def sandbox(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """A call to the mounted sandbox's API with its token; the answer's JSON."""
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    response = http.request(method, f"/sandbox{path}", headers=headers, **kwargs)
    assert response.is_success, response.text
    return response.json()


@asynccontextmanager
async def another_worker(app: FastAPI) -> AsyncIterator[tuple[JobRunner, Database]]:
    """The worker of a second server on `app`'s database: its own connections, provider runtime and
    lease holder (a pass it runs is another server's)."""
    database, runtime = Database(app.state.settings.effective_database_url), ProviderRuntime()
    try:
        yield JobRunner(app.state.settings, database, lambda: runtime, EventBus()), database
    finally:
        await runtime.aclose()
        await database.dispose()
