"""The `db` fixture: every store test runs on SQLite, and on PostgreSQL when
`SIMPLETUNER_TEST_DATABASE_URL` is set (each test in its own schema, dropped afterwards).
In CI (`CI=true`) a missing PostgreSQL URL fails instead of skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simpletuner_cloud.store import Database
from tests.conftest import in_ci

PG_ENV = "SIMPLETUNER_TEST_DATABASE_URL"


def postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if in_ci():
            pytest.fail(f"{PG_ENV} must be set in CI: the store tests must run on PostgreSQL too")
        pytest.skip(f"{PG_ENV} not set")
    return url


def unique_schema() -> str:
    return f"test_{uuid.uuid4().hex[:16]}"


async def drop_schema(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def unmigrated_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with nothing in it yet (migrations not run)."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'store' / 'jobs.db'}")
    else:
        database = Database(postgres_url(), schema=unique_schema())
    try:
        yield database
    finally:
        if database.dialect == "postgresql":
            await drop_schema(database)
        await database.dispose()


@pytest.fixture
async def db(unmigrated_db: Database) -> Database:
    await unmigrated_db.migrate()
    return unmigrated_db
