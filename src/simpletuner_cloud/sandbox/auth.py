"""Bearer/Token authentication with Replicate's exact 401 body."""

from __future__ import annotations

import hmac
import re

from starlette.requests import Request

from simpletuner_cloud.sandbox.config import SandboxConfig
from simpletuner_cloud.sandbox.problems import UNAUTHENTICATED, Problem

_R8_TOKEN = re.compile(r"r8_[0-9A-Za-z_-]{37}")


def token_from_header(value: str | None) -> str | None:
    scheme, _, token = (value or "").strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return None
    return token.strip()


def token_is_accepted(token: str | None, expected: str, *, accept_any_r8: bool = False) -> bool:
    if not token:
        return False
    if hmac.compare_digest(token.encode(), expected.encode()):
        return True
    return accept_any_r8 and _R8_TOKEN.fullmatch(token) is not None


def is_authenticated(config: SandboxConfig, authorization: str | None) -> bool:
    """Does this `Authorization` header name the account? (The rate limits ask too: only a request
    that does draws from the account's budget.)"""
    token = token_from_header(authorization)
    return token_is_accepted(token, config.token, accept_any_r8=config.accept_any_r8_token)


def require_token(request: Request) -> None:
    """FastAPI dependency for every `/v1` route (and the sandbox's admin routes)."""
    if not is_authenticated(request.app.state.sandbox.config, request.headers.get("authorization")):
        raise Problem(401, UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"})
