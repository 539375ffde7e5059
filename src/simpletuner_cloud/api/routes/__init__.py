"""Routers. Management routers are mounted under `/api/cloud` behind `require_management_access`;
public ones (health, login, webhooks, storage ingress) carry their own gates."""

from __future__ import annotations

from fastapi import APIRouter

from simpletuner_cloud.api.routes import health, login

MANAGEMENT_ROUTERS: list[APIRouter] = []

PUBLIC_ROUTERS: list[APIRouter] = [health.router, login.router]
