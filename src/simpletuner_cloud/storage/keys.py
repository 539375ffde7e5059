"""Per-job storage keys, derived rather than stored: the access key names the job (`STJ` + its id),
and the secret key is an HMAC of the access key under one installation key kept in the secret store.
Each job's pair is different and reveals nothing about another's; nothing per job is written, so a
key exists from the moment the job does (the trainer may upload before any background step runs),
and it stops working when the job does (the ingress checks the job's end and the grace period)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from simpletuner_cloud.security.files import read_secret_file
from simpletuner_cloud.security.secrets import SecretStore

PREFIX = "STJ"
MASTER = "storage.installation-key"
_JOB_SUFFIX = re.compile(r"^[0-9abcdefghjkmnpqrstvwxyz]{20}$")


def access_key_for(job_id: str) -> str:
    return PREFIX + job_id.removeprefix("job_").upper()


def job_of(access_key: str) -> str | None:
    """The job an access key was made for, or None for a key that is not one of ours."""
    if not access_key.startswith(PREFIX):
        return None
    suffix = access_key[len(PREFIX) :].lower()
    return f"job_{suffix}" if _JOB_SUFFIX.match(suffix) else None


def _installation_key(store: SecretStore, *, create: bool) -> bytes | None:
    existing = store.get(MASTER)
    if existing is None and create:
        _create_once(store.folder / MASTER, secrets.token_urlsafe(32))
        existing = store.get(MASTER)
    return existing.encode() if existing else None


def _create_once(path: Path, value: str) -> None:
    """Write the key unless it exists: link a finished 0600 file into place, which fails when another
    process got there first (then its key is the one), so two first uses never disagree."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(value)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if read_secret_file(path) is None:
        raise RuntimeError(f"could not create the storage key at {path}")


def secret_key_for(store: SecretStore, access_key: str, *, create: bool = False) -> str | None:
    key = _installation_key(store, create=create)
    if key is None:
        return None
    digest = hmac.new(key, f"simpletuner-storage-v1:{access_key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:40]


def credentials_for(store: SecretStore, job_id: str) -> tuple[str, str]:
    """(access key, secret key) for a job, making the installation key on first use."""
    access_key = access_key_for(job_id)
    secret = secret_key_for(store, access_key, create=True)
    assert secret is not None
    return access_key, secret
