"""Applies migrations/NNNN_slug.sql in order, each once, in a transaction, under a lock.

Several replicas may start at once: a session advisory lock serialises them, and each
migration is recorded in `schema_migrations` in the same transaction as its DDL. With nothing
pending, nothing is locked or created: a role with only DML rights starts on a current schema.
`check_schema` is the start-up check of a runtime that does not migrate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from storage.database import holds_session_state

log = structlog.get_logger(__name__)

# pg_advisory_lock key: "receiptd" as a number, so unrelated apps do not collide.
MIGRATION_LOCK_KEY = 0x7265636569707464

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED = "SELECT version FROM schema_migrations"
TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaMismatch(Exception):
    """The database schema is not the one this receiptd was built for; the message says which
    way and what to run."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: `NNNN_name.sql`, its version, name and SQL."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError("two migrations share a version number")
    return found


async def applied_versions(conn: asyncpg.Connection) -> set[int] | None:
    """The versions recorded in `schema_migrations` (None: the table does not exist)."""
    if not await conn.fetchval(TABLE_EXISTS):
        return None
    return {r["version"] for r in await conn.fetch(APPLIED)}


async def check_schema(conn: asyncpg.Connection) -> None:
    """SchemaMismatch unless every migration this receiptd ships, and no other, is applied."""
    applied = await applied_versions(conn) or set()
    known = {m.version for m in available()}
    ahead, behind = sorted(applied - known), sorted(known - applied)
    if ahead:
        raise SchemaMismatch(
            f"the database schema is ahead of this receiptd (migration {ahead[-1]} is applied, "
            f"this version knows up to {max(known)}): run the newer receiptd that migrated it"
        )
    if behind:
        raise SchemaMismatch(
            f"the database schema is behind this receiptd ({len(behind)} migration(s) pending, "
            f"from {behind[0]}): run `receiptd migrate` with the migration role "
            "(database.migration_url)"
        )


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call.
    SchemaMismatch when some are pending and this role may not create them."""
    applied = await applied_versions(conn)
    if applied is not None and {m.version for m in available()} <= applied:
        return []  # nothing to do: no lock, no DDL (a DML-only role gets here)
    try:
        return await _migrate_locked(conn)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise SchemaMismatch(
            "migrations are pending and this database role may not apply them "
            f"({type(exc).__name__}: {exc}): run `receiptd migrate` with the migration role "
            "(database.migration_url), or give this role the rights"
        ) from None


async def _migrate_locked(conn: asyncpg.Connection) -> list[int]:
    applied_now: list[int] = []
    holds_session_state(conn)
    await conn.execute(LOCK, MIGRATION_LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        done = {r["version"] for r in await conn.fetch(APPLIED)}
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(RECORD, migration.version, migration.name)
            applied_now.append(migration.version)
            log.info("migration_applied", version=migration.version, name=migration.name)
    finally:
        await conn.execute(UNLOCK, MIGRATION_LOCK_KEY)
    return applied_now
