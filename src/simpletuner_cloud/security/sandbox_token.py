"""The sandbox's token: one random `r8_` token per installation, kept 0600 under the state root, so an
emulator holding uploaded datasets and a webhook signing secret never accepts a token everyone knows.
`SIMPLETUNER_SANDBOX_TOKEN` overrides it (read by `Settings`)."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

from simpletuner_cloud.security.files import read_secret_file, write_secret_file

# 40 characters like a real token (`r8_` + 37), saying what it is; 30 random characters are ~178 bits.
SANDBOX_TOKEN_PREFIX = "r8_sandbox"  # noqa: S105 (a prefix, not a secret)
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 40 - len(SANDBOX_TOKEN_PREFIX)


def new_sandbox_token() -> str:
    return SANDBOX_TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))


def installation_sandbox_token(path: Path) -> str:
    """The token saved at `path`, created (0600, atomically) on first use."""
    existing = read_secret_file(path)
    if existing:
        return existing
    token = new_sandbox_token()
    write_secret_file(path, token)
    return token
