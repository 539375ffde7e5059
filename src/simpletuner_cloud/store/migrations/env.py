"""Alembic environment. `Database.migrate()` hands over a live connection in
`config.attributes["connection"]`; run from the `alembic` command line (for `alembic revision
--autogenerate` while developing) it builds an async engine from `SIMPLETUNER_DATABASE_URL`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from simpletuner_cloud.store.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    from simpletuner_cloud.settings import load_settings
    from simpletuner_cloud.store.database import Database

    database = Database(load_settings().effective_database_url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await database.dispose()


_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    asyncio.run(_run_standalone())
