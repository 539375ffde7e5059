"""`create_sandbox_app`: the FastAPI app of the emulator. Standalone, its own lifespan starts and
stops the runtime; mounted under a host app (whose lifespan Starlette does not pass down), the host
calls `app.state.sandbox.start()` / `stop()` itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from simpletuner_cloud.sandbox import (
    account,
    catalogue,
    control,
    delivery,
    files,
    hub,
    predictions,
    status_page,
    trainings,
)
from simpletuner_cloud.sandbox.auth import require_token
from simpletuner_cloud.sandbox.config import SandboxConfig
from simpletuner_cloud.sandbox.faults import FaultLayer
from simpletuner_cloud.sandbox.problems import Problem, ProblemGuard, handle_http_exception, handle_problem
from simpletuner_cloud.sandbox.rate_limits import RateLimitLayer
from simpletuner_cloud.sandbox.runtime import Sandbox


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or SandboxConfig()
    sandbox = Sandbox(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    app = FastAPI(
        title="simpletuner-cloud sandbox (offline Replicate emulator)",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sandbox = sandbox
    authenticated = [Depends(require_token)]
    for module in (account, catalogue, files, predictions, trainings):
        app.include_router(module.router, dependencies=authenticated)
    app.include_router(files.download_router)
    app.include_router(delivery.router)
    app.include_router(hub.router)  # its own HF token check (HF_ENDPOINT=<sandbox>/hub)
    app.include_router(status_page.router)
    app.include_router(control.router)
    app.add_exception_handler(Problem, handle_problem)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    # Added last = outermost: the guard, then injected faults, then Replicate's rate limits.
    app.add_middleware(RateLimitLayer)
    app.add_middleware(FaultLayer)
    app.add_middleware(ProblemGuard)
    return app
