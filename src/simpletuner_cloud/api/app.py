"""The app factory: settings, store (migrated at start-up), background worker, optional in-process
sandbox, routers and error handlers. Nothing here reads the environment; `Settings` did that."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from simpletuner_cloud import __version__
from simpletuner_cloud.api.body_limits import BodyLimitMiddleware
from simpletuner_cloud.api.errors import install_error_handlers
from simpletuner_cloud.api.headers import ResponseHeadersMiddleware
from simpletuner_cloud.api.routes import MANAGEMENT_ROUTERS, PUBLIC_ROUTERS
from simpletuner_cloud.api.routes import docs as api_docs
from simpletuner_cloud.api.security import SandboxGate, require_management_access
from simpletuner_cloud.security.admin_token import ensure_admin_token
from simpletuner_cloud.security.files import secure_state_root
from simpletuner_cloud.security.redaction import configure_logging
from simpletuner_cloud.security.secrets import learn_saved_secrets
from simpletuner_cloud.services.cost_guard import enforce_cost_limit
from simpletuner_cloud.services.deliveries import DeliveryTracker
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_runner import JobRunner
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.upload_tasks import UploadTasks
from simpletuner_cloud.services.uploads import remove_leftover_archives, stop_uploads
from simpletuner_cloud.services.webhook_receiver import WebhookReceiver
from simpletuner_cloud.services.webhook_recorder import DeliveryPruner
from simpletuner_cloud.services.worker import Worker
from simpletuner_cloud.settings import Settings, load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.web import pages


def sandbox_base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.port}/sandbox"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    database = Database(settings.effective_database_url, background_checkpoints=True)
    worker = Worker(interval=settings.worker_interval)
    bus = EventBus()
    sandbox_app = _build_sandbox(settings) if settings.sandbox else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secure_state_root(settings)  # 0700 folders, 0600 files, also an older install's 0755/0644
        ensure_admin_token(settings)
        learn_saved_secrets(settings)  # masked from the first delivery on, before anything reads them
        await database.migrate()
        remove_leftover_archives(settings)  # an upload cut off by a crash left its archive behind
        if sandbox_app is not None:
            await sandbox_app.state.sandbox.start()
        await bus.start(database)
        worker.start()
        if database.checkpointer is not None:
            database.checkpointer.start()
        # What start-up built (imports, the app, its caches) lives as long as the process: keep it out
        # of the collector's full passes, which otherwise stall every request ~0.1 s each time they
        # come round under load (measured by bench/webhooks.py).
        gc.freeze()
        try:
            yield
        finally:
            await stop_uploads(app.state.upload_tasks, drain_seconds=settings.shutdown_drain_seconds)
            await worker.stop()
            await runner.stop(drain_seconds=settings.shutdown_drain_seconds)
            await deliveries.stop(drain_seconds=settings.shutdown_drain_seconds)
            await receiver.stop()
            await app.state.provider_runtime.aclose()  # its pooled clients, once nothing calls out
            await bus.stop()
            if sandbox_app is not None:
                await sandbox_app.state.sandbox.stop()
            await database.dispose()
            if database.checkpointer is not None:
                await database.checkpointer.stop()
            gc.unfreeze()  # collectable again (a process that builds another app, tests do)

    # fastapi-offline mounts its copy of Swagger UI's files; our own /docs page (with its CSP) uses them.
    app = FastAPIOffline(
        title="simpletuner-cloud",
        version=__version__,
        description="Train SimpleTuner LoRAs on Replicate's GPUs from your own machine.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        static_url=api_docs.DOCS_ASSETS,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.worker = worker
    app.state.sandbox_app = sandbox_app
    app.state.upload_tasks = UploadTasks(database)
    app.state.provider_runtime = ProviderRuntime()
    runner = JobRunner(settings, database, lambda: app.state.provider_runtime, bus)
    worker.register("jobs", runner.run_pass)
    worker.register(
        "cost_limit",
        lambda: enforce_cost_limit(settings, database, lambda: app.state.provider_runtime, bus),
    )
    receiver = WebhookReceiver(
        settings, database, lambda: app.state.provider_runtime, bus, worker.wake, runner.catalogue
    )
    worker.register("webhook_deliveries", DeliveryPruner(database).run)  # kept 7 days
    # Its own task, apart from the jobs: a delivery never changes a training's status.
    deliveries = DeliveryTracker(settings, database, bus, environ=lambda: app.state.provider_runtime.environ)
    worker.register("deliveries", deliveries.run_pass)
    app.state.delivery_tracker = deliveries
    app.state.webhook_receiver = receiver
    app.state.event_bus = bus
    app.state.job_runner = runner
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(ResponseHeadersMiddleware, sandbox=settings.sandbox)
    for router in PUBLIC_ROUTERS:
        app.include_router(router)
    for router in MANAGEMENT_ROUTERS:
        app.include_router(router, prefix="/api/cloud", dependencies=[Depends(require_management_access)])
    app.include_router(api_docs.router)
    app.include_router(pages.router)
    app.mount("/static", pages.static_files, name="static")
    if sandbox_app is not None:
        # The same local-or-admin rule as /api/cloud, with the sandbox's own token check inside.
        app.mount("/sandbox", SandboxGate(sandbox_app, settings))
    return app


def _build_sandbox(settings: Settings) -> FastAPI:
    from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app

    config = SandboxConfig(
        public_base_url=sandbox_base_url(settings),
        token=settings.effective_sandbox_token(),
        step_seconds=settings.sandbox_step_seconds,
    )
    return create_sandbox_app(config)
