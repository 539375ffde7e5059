"""The admin token: created on first start in a 0600 file under the state root; it lets a browser or
script that is not the local user reach the management routes."""

from __future__ import annotations

import hmac
import secrets

from simpletuner_cloud.security.files import read_secret_file, write_secret_file
from simpletuner_cloud.settings import Settings

SESSION_COOKIE = "simpletuner_session"


def ensure_admin_token(settings: Settings) -> str:
    existing = read_secret_file(settings.admin_token_path)
    if existing:
        return existing
    token = "st_" + secrets.token_urlsafe(32)
    write_secret_file(settings.admin_token_path, token)
    return token


def read_admin_token(settings: Settings) -> str | None:
    return read_secret_file(settings.admin_token_path)


def token_matches(expected: str | None, presented: str | None) -> bool:
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
