"""`/v1/account` and `/v1/webhooks/default/secret`: one fixed sandbox account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/v1/account")
async def get_account(request: Request) -> dict[str, Any]:
    username = request.app.state.sandbox.config.account_username
    # The official client requires `name` to be a string, so it is always sent.
    return {"type": "user", "username": username, "name": "Sandbox (offline Replicate emulator)"}


@router.get("/v1/webhooks/default/secret")
async def get_webhook_secret(request: Request) -> dict[str, str]:
    return {"key": request.app.state.sandbox.webhook_secret}
