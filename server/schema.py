"""The database schema at start-up, as `[database]` says: migrate (over the migration role's
URL when one is set) or, with `migrate_on_start = false`, only check that it is this
version's (SchemaMismatch otherwise: one line, exit 1)."""

from __future__ import annotations

import asyncpg

from config.settings import Settings
from server.failures import CONNECT_ERRORS, unreachable
from storage.migrations import check_schema, migrate


async def prepare_schema(conn: asyncpg.Connection, settings: Settings) -> None:
    """Make sure `conn`'s database has this version's schema before anything uses it."""
    if not settings.database.migrate_on_start:
        await check_schema(conn)
        return
    migration_url = settings.database.migration_url.get_secret_value()
    if not migration_url:
        await migrate(conn)
        return
    try:
        owner = await asyncpg.connect(migration_url)
    except CONNECT_ERRORS as exc:
        raise unreachable("the database (as the migration role)", migration_url, exc) from None
    try:
        await migrate(owner)
    finally:
        await owner.close()
