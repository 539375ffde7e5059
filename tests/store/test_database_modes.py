"""SQLite's files are 0600 whatever the umask: the database we create before SQLite opens it, the WAL
and shared-memory files SQLite creates itself, again after it deleted and recreated them, and an
older installation's 0644 files once connected."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from simpletuner_cloud.store import Database


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(folder.iterdir())}


async def write_a_row(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (secret TEXT)")
        await conn.exec_driver_sql("INSERT INTO t VALUES ('proxy password')")


async def test_the_database_wal_and_shm_are_0600_while_in_use(tmp_path: Path) -> None:
    folder = tmp_path / "cloud"
    database = Database(f"sqlite+aiosqlite:///{folder / 'jobs.db'}")
    try:
        await database.migrate()
        await write_a_row(database)
        async with database.engine.connect():  # a connection open: SQLite keeps -wal and -shm
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert modes(folder) == {"jobs.db": 0o600, "jobs.db-shm": 0o600, "jobs.db-wal": 0o600}
    finally:
        await database.dispose()


async def test_files_sqlite_recreates_later_stay_0600(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first = Database(f"sqlite+aiosqlite:///{path}")
    await first.migrate()
    await first.dispose()  # the last connection closed: SQLite deleted -wal and -shm
    assert modes(tmp_path) == {"jobs.db": 0o600}
    second = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await write_a_row(second)
        async with second.engine.connect():
            assert modes(tmp_path) == {"jobs.db": 0o600, "jobs.db-shm": 0o600, "jobs.db-wal": 0o600}
    finally:
        await second.dispose()


async def test_an_older_installations_files_are_tightened_on_connect(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    old = Database(f"sqlite+aiosqlite:///{path}")
    await old.migrate()
    async with old.engine.connect():
        for file in tmp_path.iterdir():
            file.chmod(0o644)  # as an older version left them
    await old.dispose()
    path.chmod(0o644)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.engine.connect():
            assert modes(tmp_path) == {"jobs.db": 0o600, "jobs.db-shm": 0o600, "jobs.db-wal": 0o600}
    finally:
        await database.dispose()
