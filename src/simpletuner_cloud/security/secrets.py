"""The secret store: credentials that settings need (the proxy password today) kept as 0600 files in a
0700 folder under the state root (`~/.simpletuner/cloud/secrets/`), so database rows, which end up in
backups, WAL files and PostgreSQL dumps, hold only a reference to them. Every value saved or read
here is masked by the redaction until it is deleted (see `security/files.py`)."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from simpletuner_cloud.security.files import delete_secret_file, read_secret_file, write_secret_file
from simpletuner_cloud.settings import Settings

FOLDER_MODE = 0o700
# A reference is a file name in the store: nothing that could climb out of the folder.
_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


def is_reference(value: object) -> bool:
    return isinstance(value, str) and bool(_REFERENCE.match(value)) and ".." not in value


class SecretStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, settings: Settings) -> SecretStore:
        return cls(settings.cloud_dir / "secrets")

    def new_reference(self, prefix: str) -> str:
        """A fresh name per saved value, so a new secret is written beside the old one and the row
        that names it switches over in one commit (the old one is deleted after)."""
        return f"{prefix}.{secrets.token_hex(6)}"

    def put(self, reference: str, value: str) -> None:
        self._check(reference)
        self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(self.folder, FOLDER_MODE)  # mkdir's mode is masked by the umask; an old folder may be 755
        write_secret_file(self.folder / reference, value)

    def get(self, reference: object) -> str | None:
        """The stored value, or None for a missing secret or a reference that is not one (a row
        edited by hand must not read files outside the store)."""
        if not is_reference(reference):
            return None
        return read_secret_file(self.folder / str(reference))

    def delete(self, reference: object) -> bool:
        if not is_reference(reference):
            return False
        return delete_secret_file(self.folder / str(reference))

    def learn(self) -> int:
        """Read every saved secret, so this process masks them before anything else reads them (a
        delivery can arrive before the first page or job that needs them). Returns how many."""
        try:
            names = sorted(path.name for path in self.folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return 0
        return sum(self.get(name) is not None for name in names)

    @staticmethod
    def _check(reference: str) -> None:
        if not is_reference(reference):
            raise ValueError(f"not a secret reference: {reference!r}")


def learn_saved_secrets(settings: Settings) -> None:
    """At start-up: the secret store and the saved Replicate token become known to the redaction
    (the admin token is read by `ensure_admin_token`)."""
    SecretStore.of(settings).learn()
    read_secret_file(settings.replicate_token_path)
