"""Routers. Management routers are mounted under `/api/cloud` behind `require_management_access`;
public ones (health, login, webhooks, storage ingress) carry their own gates."""

from __future__ import annotations

from fastapi import APIRouter

from simpletuner_cloud.api.routes import (
    artifacts,
    configs,
    costs,
    data,
    events,
    hardware,
    health,
    jobs,
    login,
    providers,
    publishing,
    storage,
    system_status,
    webhooks,
)
from simpletuner_cloud.api.routes.uploads import router as uploads_router

MANAGEMENT_ROUTERS: list[APIRouter] = [
    providers.router,
    hardware.router,
    system_status.router,
    configs.router,
    data.router,
    uploads_router,
    jobs.router,
    costs.router,
    events.router,
    webhooks.router,
    publishing.router,
    artifacts.router,
]

PUBLIC_ROUTERS: list[APIRouter] = [health.router, login.router, webhooks.receiver_router, storage.router]
