"""Database handle and migrations: URL normalisation, SQLite pragmas, idempotent and concurrent
migrations, and a migrated schema identical to the table metadata."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import Database
from simpletuner_cloud.store.database import MIGRATIONS_DIR, _switch_to_wal, alembic_config, normalize_url
from simpletuner_cloud.store.tables import Base

from .conftest import drop_schema, postgres_url, unique_schema

TABLES = {
    "alembic_version", "jobs", "job_events", "job_logs", "job_metrics", "provider_settings", "upload_locks",
    "uploads", "webhook_deliveries", "deliveries", "delivery_artifacts", "dataset_uploads",
    "deleted_job_costs",
}  # fmt: skip


def _schema_diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:***@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=True) == expected


def test_rejects_other_backends_and_bad_schemas() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/d")
    with pytest.raises(ValueError, match="schema"):
        Database("sqlite+aiosqlite:///x.db", schema="s")
    with pytest.raises(ValueError, match="schema"):
        Database("postgresql://u@h/d", schema='x"; DROP TABLE jobs; --')


async def test_default_url_is_sqlite_under_the_state_root(state_root: Path) -> None:
    database = Database.from_settings(load_settings())
    try:
        assert database.dialect == "sqlite"
        await database.migrate()
        folder = state_root / "cloud"
        assert (folder / "jobs.db").is_file()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert await database.ping()
    finally:
        await database.dispose()


async def test_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() >= 1000
    finally:
        await database.dispose()


class _Cursor:
    """Answers the WAL switch with the given errors first, as a connection racing another one's."""

    def __init__(self, *errors: sqlite3.OperationalError) -> None:
        self.errors = list(errors)
        self.statements: list[str] = []

    def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if self.errors:
            raise self.errors.pop(0)


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked" if code == sqlite3.SQLITE_BUSY else "error")
    error.sqlite_errorcode = code
    return error


def test_the_wal_switch_waits_out_a_concurrent_switch() -> None:
    """SQLite answers BUSY at once (no busy timeout) while another connection switches a new
    database to WAL; the switch is retried. Other errors are not."""
    racing = _Cursor(_sqlite_error(sqlite3.SQLITE_BUSY), _sqlite_error(sqlite3.SQLITE_BUSY))
    _switch_to_wal(racing)
    assert racing.statements == ["PRAGMA journal_mode=WAL"] * 3
    broken = _Cursor(_sqlite_error(sqlite3.SQLITE_IOERR))
    with pytest.raises(sqlite3.OperationalError):
        _switch_to_wal(broken)
    assert broken.statements == ["PRAGMA journal_mode=WAL"]


async def test_migrate_is_idempotent_and_matches_metadata(db: Database) -> None:
    await db.migrate()
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_schema_diffs) == []
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == TABLES
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0008"


async def test_revision_0008_applies_over_0007_and_reverts(unmigrated_db: Database) -> None:
    """A database at 0007 (an installation before the ledger of deleted jobs' costs) upgrades to
    0008 in place, matching the metadata, and downgrades back without the table."""

    def to(revision: str, down: bool = False) -> Callable[[Connection], None]:
        def run(connection: Connection) -> None:
            config = alembic_config(connection)
            (command.downgrade if down else command.upgrade)(config, revision)

        return run

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    if unmigrated_db.dialect == "sqlite":
        unmigrated_db.sqlite_path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    async with unmigrated_db.engine.begin() as conn:
        if unmigrated_db.schema is not None:
            await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{unmigrated_db.schema}"')
        await conn.run_sync(to("0007"))
        assert "deleted_job_costs" not in await conn.run_sync(tables)
    await unmigrated_db.migrate()
    async with unmigrated_db.engine.begin() as conn:
        assert await conn.run_sync(_schema_diffs) == []
        await conn.run_sync(to("0007", down=True))
        assert await conn.run_sync(tables) == TABLES - {"deleted_job_costs"}
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0007"


async def test_ping(db: Database) -> None:
    assert await db.ping() is True


async def test_ping_false_when_unreachable(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "jobs.db"  # never created: migrate() not called
    database = Database(f"sqlite+aiosqlite:///{missing}")
    before = set(threading.enumerate())
    try:
        assert await database.ping() is False
    finally:
        await database.dispose()
        _join_aiosqlite_workers(before)


def _join_aiosqlite_workers(before: set[threading.Thread]) -> None:
    """aiosqlite stops a connection that failed to open without waiting for its worker thread, which
    then hands a result to this test's event loop. Wait for that thread while the loop is open: on a
    loaded machine it can otherwise run after the loop closed and fail in the next test."""
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{thread.name} did not stop"


async def test_two_processes_migrating_at_once(unmigrated_db: Database) -> None:
    """Two handles (separate pools, like two server replicas) start together: both succeed."""
    other = Database(unmigrated_db.url.render_as_string(hide_password=False), schema=unmigrated_db.schema)
    try:
        await asyncio.gather(unmigrated_db.migrate(), other.migrate(), unmigrated_db.migrate())
        async with other.engine.connect() as conn:
            assert await conn.run_sync(_schema_diffs) == []
    finally:
        await other.dispose()


@pytest.mark.postgres
async def test_postgres_schema_isolation_creates_the_schema() -> None:
    url = postgres_url()
    database = Database(url, schema=unique_schema())
    try:
        await database.migrate()
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_schema()"))).scalar() == database.schema
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == TABLES
    finally:
        await drop_schema(database)
        await database.dispose()


def test_migrations_ship_as_packages() -> None:
    """The wheel carries the revisions only if `migrations/` and `versions/` are packages."""
    assert importlib.util.find_spec("simpletuner_cloud.store.migrations.versions") is not None
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
