"""Failure drills: real servers stopped and restarted inside the tests.

Drills that stop PostgreSQL or Redis use their OWN embedded instances (data dirs under
`scratch_dir()`, one of each for the whole drills package), so the session-wide servers other
tests share are never touched. Drills that stop the service itself run `receiptd serve` as a
subprocess against a cloned test database.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from server.embedded import EmbeddedPostgres, EmbeddedRedis
from storage.migrations import migrate
from tests.conftest import scratch_dir, with_database


@pytest.fixture(scope="package")
def drill_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rcd-drill-", dir=scratch_dir()) as tmp:
        yield Path(tmp)


@dataclass
class Drilled:
    """One of the drills' own servers and its URL (the same after a restart)."""

    server: EmbeddedPostgres | EmbeddedRedis
    url: str

    async def stop(self) -> None:
        await self.server.stop()

    async def start(self) -> None:
        assert await self.server.start() == self.url


@pytest.fixture(scope="package")
async def drill_postgres(drill_root: Path) -> AsyncIterator[Drilled]:
    """A PostgreSQL of the drills' own (running; a drill may stop and start it)."""
    server = EmbeddedPostgres(drill_root / "pg")
    drilled = Drilled(server, await server.start())
    yield drilled
    await server.stop()


@pytest.fixture(scope="package")
async def drill_redis(drill_root: Path) -> AsyncIterator[Drilled]:
    """A Redis of the drills' own (running; a drill may stop and start it)."""
    server = EmbeddedRedis(drill_root / "redis")
    drilled = Drilled(server, await server.start())
    yield drilled
    await server.stop()


async def fresh_database(server_url: str) -> str:
    """A new, migrated database on the drills' PostgreSQL; its URL."""
    name = f"drill_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url
