"""Secrets at rest: private folders and files whatever the umask, tightening that never loosens and
never follows a link, and the start-up pass over a state root an older version left readable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from simpletuner_cloud.security.files import (
    create_private_file,
    make_private_dir,
    secure_state_root,
    tighten,
    write_secret_file,
)
from simpletuner_cloud.settings import load_settings


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems ship (files 0644, folders 0755): what made the state readable before."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_dirs_are_0700_with_every_parent_created(tmp_path: Path) -> None:
    make_private_dir(tmp_path / "home" / "cloud" / "uploads")
    assert [mode(tmp_path / p) for p in ("home", "home/cloud", "home/cloud/uploads")] == [0o700] * 3


def test_an_existing_folder_is_tightened_and_reported(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir(mode=0o755)
    assert make_private_dir(tmp_path / "open") is True
    assert mode(tmp_path / "open") == 0o700
    assert make_private_dir(tmp_path / "open") is False  # already private: nothing to say


def test_tighten_never_loosens_and_never_follows_a_link(tmp_path: Path) -> None:
    strict = tmp_path / "strict"
    strict.write_text("x")
    strict.chmod(0o400)
    assert tighten(strict, 0o600) is False and mode(strict) == 0o400
    target = tmp_path / "target"
    target.write_text("not ours to change")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    assert tighten(tmp_path / "link", 0o600) is False
    assert mode(target) == 0o644


def test_a_private_file_is_created_0600_or_tightened(tmp_path: Path) -> None:
    create_private_file(tmp_path / "jobs.db")
    assert (mode(tmp_path / "jobs.db"), (tmp_path / "jobs.db").read_bytes()) == (0o600, b"")
    (tmp_path / "old.db").write_bytes(b"rows")
    (tmp_path / "old.db").chmod(0o644)
    create_private_file(tmp_path / "old.db")
    assert (mode(tmp_path / "old.db"), (tmp_path / "old.db").read_bytes()) == (0o600, b"rows")


def test_a_private_file_is_never_created_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").symlink_to(tmp_path / "elsewhere")
    create_private_file(tmp_path / "jobs.db")
    assert not (tmp_path / "elsewhere").exists()


def test_a_secret_file_makes_its_folders_private(tmp_path: Path) -> None:
    write_secret_file(tmp_path / "state" / "cloud" / "admin_token", "st_x")
    assert [mode(tmp_path / p) for p in ("state", "state/cloud", "state/cloud/admin_token")] == [
        0o700,
        0o700,
        0o600,
    ]


def test_start_up_tightens_an_older_installation(state_root: Path) -> None:
    cloud = state_root / "cloud"
    (cloud / "uploads").mkdir(parents=True)
    state_root.chmod(0o755)
    cloud.chmod(0o755)
    for name in ("jobs.db", "jobs.db-wal", "jobs.db-shm", "admin_token", "replicate_token"):
        (cloud / name).write_bytes(b"x")
        (cloud / name).chmod(0o644)
    secure_state_root(load_settings())
    assert {str(p.relative_to(state_root)): mode(p) for p in [state_root, *state_root.rglob("*")]} == {
        ".": 0o700,
        "cloud": 0o700,
        "cloud/uploads": 0o700,
        "cloud/jobs.db": 0o600,
        "cloud/jobs.db-wal": 0o600,
        "cloud/jobs.db-shm": 0o600,
        "cloud/admin_token": 0o600,
        "cloud/replicate_token": 0o600,
        "cloud_outputs": 0o700,
    }


def test_start_up_creates_the_state_root_private(state_root: Path) -> None:
    secure_state_root(load_settings())
    assert [mode(p) for p in (state_root, state_root / "cloud", state_root / "cloud_outputs")] == [0o700] * 3
