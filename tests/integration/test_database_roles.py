"""Two database roles, as a DBA runs them (issue 25): a migration role that owns the tables
and a runtime role with only DML on them. Real PostgreSQL; the grants are the ones
docs/operations.md gives (read from there, so the docs cannot drift from what is tested)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from config.settings import Settings
from server import cli
from server.app import create_app
from server.schema import prepare_schema
from storage.migrations import SchemaMismatch, available
from tests.conftest import ADMIN_KEY, auth, base_config, with_database

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
PASSWORD = "rcd-test-password"


def documented_grants() -> str:
    """The SQL block under "Database roles" in docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text[text.index("### Database roles") :]
    return re.search(r"```sql\n(.*?)```", section, re.S)[1]


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}:{PASSWORD}@{host}"))


@dataclass
class Roles:
    owner_url: str
    app_url: str
    names: tuple[str, str]


@pytest.fixture
async def roles(pg_server_url: str) -> AsyncIterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    owner, app, database = f"rcd_owner_{suffix}", f"rcd_app_{suffix}", f"rcd_roles_{suffix}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        for role in (owner, app):
            await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        await admin.execute(f'CREATE DATABASE "{database}" OWNER {owner}')
        url = with_database(pg_server_url, database)
        # PostgreSQL 15+ already keeps CREATE on `public` from everyone but its owner.
        inside = await asyncpg.connect(url)
        try:
            await inside.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            await inside.execute(f"ALTER SCHEMA public OWNER TO {owner}")
        finally:
            await inside.close()
        yield Roles(as_role(url, owner), as_role(url, app), (owner, app))
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in (app, owner):
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await admin.close()


async def grant_runtime(roles: Roles) -> None:
    owner, app = roles.names
    conn = await asyncpg.connect(roles.owner_url)
    try:
        sql = documented_grants().replace("receiptd_owner", owner).replace("receiptd_app", app)
        await conn.execute(sql)
    finally:
        await conn.close()


def settings(roles: Roles, redis_url: str, tmp_path: Path, **database: Any) -> Settings:
    config = base_config(roles.app_url, redis_url, tmp_path)
    config["database"] |= database
    return Settings(**config)


def run_cli(monkeypatch, settings_: Settings, *argv: str) -> int:
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    monkeypatch.setattr(cli, "load_settings", lambda _path: settings_)
    return cli.main(list(argv))


async def test_the_migration_role_migrates_and_the_dml_role_serves_and_runs_the_commands(
    roles, redis_url, tmp_path, aiohttp_client, monkeypatch, capsys
) -> None:
    runtime = settings(roles, redis_url, tmp_path, migrate_on_start=False)
    # Before any migration the runtime refuses to start (serve and the commands print this
    # one line and exit 1) …
    app_conn = await asyncpg.connect(roles.app_url)
    try:
        with pytest.raises(SchemaMismatch, match="behind this receiptd"):
            await prepare_schema(app_conn, runtime)
    finally:
        await app_conn.close()
    assert await asyncio.to_thread(run_cli, monkeypatch, runtime, "prune") == 1
    assert "receiptd: the database schema is behind" in capsys.readouterr().err
    # … and may not migrate: one line, exit 1, nothing created.
    assert await asyncio.to_thread(run_cli, monkeypatch, runtime, "migrate") == 1
    assert "may not apply them" in capsys.readouterr().err
    # The migration role migrates (`receiptd migrate` over database.migration_url) …
    migrating = settings(roles, redis_url, tmp_path, migration_url=roles.owner_url)
    code = await asyncio.to_thread(run_cli, monkeypatch, migrating, "migrate")
    assert code == 0
    await grant_runtime(roles)
    # … and the DML-only role serves: reads, writes (a grant: an audited transaction), the feed.
    for mode in (runtime, settings(roles, redis_url, tmp_path)):  # check only / migrate if due
        client = await aiohttp_client(create_app(mode))
        assert (await client.get("/readyz")).status == 200
        user = f"u-{uuid.uuid4().hex[:6]}"
        resp = await client.post(
            f"/v1/customers/{user}/entitlements/premium/grants",
            json={"duration": "P1M"},
            headers=auth(ADMIN_KEY),
        )
        assert resp.status == 201, await resp.text()
        assert (await client.get("/v1/events", headers=auth(ADMIN_KEY))).status == 200
        await client.close()
    for argv in (("prune",), ("replay",)):
        code = await asyncio.to_thread(run_cli, monkeypatch, runtime, *argv)
        assert code == 0, (argv, capsys.readouterr())


async def test_a_schema_ahead_of_the_code_is_refused(roles, redis_url, tmp_path) -> None:
    owner = await asyncpg.connect(roles.owner_url)
    try:
        migrating = settings(roles, redis_url, tmp_path, migration_url=roles.owner_url)
        await prepare_schema(owner, migrating)
        newest = max(m.version for m in available())
        await owner.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')",
            newest + 1,
        )
        with pytest.raises(SchemaMismatch, match="ahead of this receiptd"):
            await prepare_schema(
                owner, settings(roles, redis_url, tmp_path, migrate_on_start=False)
            )
    finally:
        await owner.close()
