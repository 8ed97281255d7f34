"""Migrations: all apply to an empty database, once, concurrently, matching schema.sql."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import pytest

from storage.migrations import available, migrate
from tests.conftest import with_database

SCHEMA_FILE = Path(__file__).parents[2] / "migrations" / "schema.sql"

COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position
"""
CONSTRAINTS = """
SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2
"""
INDEXES = """
SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname
"""


async def describe_schema(conn: asyncpg.Connection) -> str:
    """A canonical, server-version-independent text of the public schema."""
    lines: list[str] = []
    table = None
    for r in await conn.fetch(COLUMNS):
        if r["table_name"] != table:
            table = r["table_name"]
            lines.append(f"-- table {table}")
        default = f" DEFAULT {r['column_default']}" if r["column_default"] else ""
        null = "" if r["is_nullable"] == "YES" else " NOT NULL"
        lines.append(f"{table}.{r['column_name']} {r['data_type']}{null}{default}")
    lines.append("-- constraints")
    lines += [f"{r['tbl']} {r['conname']}: {r['def']}" for r in await conn.fetch(CONSTRAINTS)]
    lines.append("-- indexes")
    lines += [r["indexdef"] for r in await conn.fetch(INDEXES)]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def fresh_database(pg_server_url: str):
    """An empty database (no migrations), dropped afterwards."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_server_url, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_migrations_are_numbered_and_ordered() -> None:
    versions = [m.version for m in available()]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert versions == list(range(1, versions[-1] + 1))


async def test_all_migrations_apply_once_and_match_the_committed_schema(fresh_database) -> None:
    url = fresh_database
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate(conn)
        assert applied == [m.version for m in available()]
        assert await migrate(conn) == []  # idempotent
        schema = await describe_schema(conn)
    finally:
        await conn.close()
    if os.environ.get("UPDATE_SCHEMA") == "1":
        SCHEMA_FILE.write_text(schema)
    assert schema == SCHEMA_FILE.read_text(), (
        "schema drifted from migrations/schema.sql; regenerate with UPDATE_SCHEMA=1"
    )


async def test_concurrent_start_applies_each_migration_once(fresh_database) -> None:
    url = fresh_database
    conns = [await asyncpg.connect(url) for _ in range(5)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in available()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(available())
    finally:
        for c in conns:
            await c.close()


async def test_journal_payloads_take_lz4_only_where_the_server_has_it(fresh_database) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn)  # a server without lz4 (the embedded one) must not fail 0019
        lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        rows = await conn.fetch(
            "SELECT attname, attcompression::text AS method FROM pg_attribute "
            "WHERE attrelid = 'store_notifications'::regclass AND attname IN ('payload', 'reads')"
        )
    finally:
        await conn.close()
    expected = "l" if lz4 else ""  # "": the server's default_toast_compression
    assert {r["attname"]: r["method"] for r in rows} == {"payload": expected, "reads": expected}
