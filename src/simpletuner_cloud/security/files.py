"""Secrets at rest: small secret files written 0600 from the first byte and replaced atomically, private
(0700) folders, and the start-up pass that tightens a state root an older version left readable. Each
secret file's value is known to the redaction from the moment it is written or read until it is
deleted, so the masking of logs, errors and the recorder covers it whatever its shape."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path

from simpletuner_cloud.security.redaction import hold_secrets, release_secrets
from simpletuner_cloud.settings import Settings

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Files SQLite keeps beside a database; it creates the last two itself, copying the database's mode.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def make_private_dir(path: Path) -> bool:
    """Create `path` and any missing parents as 0700 (a plain `mkdir -p` would leave the parents 0755),
    and tighten `path` itself if it already exists with group or other access (a state root that is a
    link to a folder elsewhere: that folder). Returns True when an existing folder was tightened."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it a moment ago
            folder.mkdir(mode=PRIVATE_DIR)
    return tighten(path, PRIVATE_DIR, follow=True) and not missing


def tighten(path: Path, mode: int, *, follow: bool = False) -> bool:
    """Remove permissions beyond `mode` from an existing file or folder (never loosens; a link is left
    alone unless `follow`). Returns True when the mode changed; a path we may not change is logged."""
    try:
        info = path.stat() if follow else path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(info.st_mode):
        return False
    current = stat.S_IMODE(info.st_mode)
    wanted = current & mode
    if wanted == current:
        return False
    try:
        os.chmod(path, wanted)
    except OSError as exc:
        log.warning("could not make %s private (mode %o): %s", path, current, exc.strerror)
        return False
    return True


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file unless it exists (then tighten it), without following a link, so the
    program that fills it later (SQLite) inherits the mode instead of the umask's 0644."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)  # a umask cannot loosen 0600, but an ACL default could
    finally:
        os.close(fd)


def tighten_sqlite_files(database: Path) -> None:
    """The database and the WAL, shared-memory and journal files beside it, 0600."""
    for suffix in SQLITE_SUFFIXES:
        tighten(database.with_name(database.name + suffix), PRIVATE_FILE)


def secure_state_root(settings: Settings) -> None:
    """The start-up pass, before anything is written: the state root, `cloud/` and `cloud_outputs/` are
    0700 (created if missing); inside `cloud/` every folder (uploads) is 0700 and every file (database,
    WAL, tokens) 0600. An installation made by an older version (folders 0755, `jobs.db*` 0644) is
    tightened in place, and what changed is logged."""
    changed = [
        folder
        for folder in (settings.home, settings.cloud_dir, settings.outputs_dir)
        if make_private_dir(folder)
    ]
    for child in sorted(settings.cloud_dir.iterdir()):
        try:
            info = child.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) and tighten(child, PRIVATE_DIR):
            changed.append(child)
        elif stat.S_ISREG(info.st_mode) and tighten(child, PRIVATE_FILE):
            changed.append(child)
    if changed:
        log.info("made private (owner only): %s", ", ".join(str(path) for path in changed))


def _hold(path: Path, content: str | None) -> None:
    """Tell the redaction what the file holds: its value, or the string values of a JSON object (a
    job's secrets are one file, `{"hf_token": ..., "s3_secret_key": ...}`)."""
    holder = str(path.absolute())
    if not content:
        release_secrets(holder)
        return
    values = [content]
    if content.startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(content)
            if isinstance(data, dict):
                values = [value for value in data.values() if isinstance(value, str)]
    hold_secrets(holder, values)


def write_secret_file(path: Path, content: str) -> None:
    _hold(path, content.strip())  # before it is on disk: no reader can see it unmasked in between
    make_private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def read_secret_file(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        _hold(path, None)  # deleted, perhaps by another server sharing the folder
        return None
    except PermissionError:
        return None
    _hold(path, value)
    return value or None


def delete_secret_file(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    finally:
        _hold(path, None)
    return True
