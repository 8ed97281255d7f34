"""TLS to PostgreSQL and Redis, verified (issue 25): `sslmode=verify-full` with a CA file and
`rediss://` with `ssl_ca_certs` serve and migrate; a server certificate from another CA, or
for another host, is refused — in one line at start-up for the database, as a visible cache
outage for Redis. The servers' half of TLS is tests/tls.py in front of the real servers; the
client half is receiptd's own connection code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from config.settings import Settings
from server import cli
from server.app import create_app
from server.failures import StartupFailure
from tests.conftest import ADMIN_KEY, READER_KEY, auth, with_database
from tests.tls import LocalCa, TlsTerminator, local_ca


def postgres_target(url: str) -> str | tuple[str, int]:
    """Where the terminator sends plaintext: the test server's unix socket or host:port."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    port = parts.port or int(query.get("port", ["5432"])[0])
    if "host" in query and query["host"][0].startswith("/"):
        return f"{query['host'][0]}/.s.PGSQL.{port}"
    return (parts.hostname or "127.0.0.1", port)


def redis_target(url: str) -> str | tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return (parts.hostname or "127.0.0.1", parts.port or 6379)


@pytest.fixture
def ca(tmp_path: Path) -> LocalCa:
    return local_ca(tmp_path / "tls", label="trusted")


@pytest.fixture
def other_ca(tmp_path: Path) -> LocalCa:
    return local_ca(tmp_path / "tls", label="other")


async def terminator(server: LocalCa, target: str | tuple[str, int], *, postgres: bool):
    found = TlsTerminator(server.server_context(), target, postgres=postgres)
    await found.start()
    return found


@pytest.fixture
async def tls_postgres(ca: LocalCa, pg_server_url: str) -> AsyncIterator[TlsTerminator]:
    found = await terminator(ca, postgres_target(pg_server_url), postgres=True)
    yield found
    await found.stop()


@pytest.fixture
async def tls_redis(ca: LocalCa, redis_url: str) -> AsyncIterator[TlsTerminator]:
    found = await terminator(ca, redis_target(redis_url), postgres=False)
    yield found
    await found.stop()


def tls_database_url(database_url: str, port: int, ca_file: Path, mode: str = "verify-full") -> str:
    """`database_url`'s user and database, over TLS on 127.0.0.1:`port`."""
    parts = urlsplit(database_url)
    user = parts.username or "postgres"
    return (
        f"postgresql://{user}@127.0.0.1:{port}{parts.path}"
        f"?sslmode={mode}&sslrootcert={quote(str(ca_file))}"
    )


def tls_redis_url(port: int, ca_file: Path) -> str:
    return f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(ca_file))}"


def run_cli(monkeypatch, settings_: Settings, *argv: str) -> int:
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    monkeypatch.setattr(cli, "load_settings", lambda _path: settings_)
    return cli.main(list(argv))


@pytest.fixture
async def empty_database(pg_server_url: str) -> AsyncIterator[str]:
    """A database without receiptd's schema, for `receiptd migrate` over TLS."""
    name = f"tls_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_the_terminator_takes_only_tls(tls_postgres, database_url, ca) -> None:
    """What makes the other tests mean something: a plaintext client is turned away."""
    url = tls_database_url(database_url, tls_postgres.port, ca.ca_file, mode="disable")
    with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
        await asyncpg.connect(url, timeout=5)
    assert tls_postgres.refused == 1


async def test_verified_tls_to_postgres_and_redis_migrates_and_serves(
    config, empty_database, tls_postgres, tls_redis, ca, redis_client, aiohttp_client, monkeypatch
) -> None:
    config["database"] = {"url": tls_database_url(empty_database, tls_postgres.port, ca.ca_file)}
    config["redis"] = {"url": tls_redis_url(tls_redis.port, ca.ca_file), "required": True}
    settings = Settings(**config)
    assert await asyncio.to_thread(run_cli, monkeypatch, settings, "migrate") == 0
    client = await aiohttp_client(create_app(settings))
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert "cache" not in ready
    resp = await client.post(
        "/v1/customers/u-tls/entitlements/premium/grants",
        json={"duration": "P1M"},
        headers=auth(ADMIN_KEY),
    )
    assert resp.status == 201, await resp.text()
    read = await client.get("/v1/customers/u-tls", headers=auth(READER_KEY))
    assert (await read.json())["entitlements"]["premium"]["active"] is True
    # The answer was cached through the TLS connection: the plain server holds it.
    assert any(k.startswith(b"receiptd:") for k in await redis_client.keys("*"))
    metrics = await (await client.get("/metrics")).text()
    assert "receiptd_cache_up 1.0" in metrics
    assert tls_postgres.handshakes >= 2
    assert tls_redis.handshakes >= 1
    assert tls_postgres.refused == 0


@pytest.mark.parametrize("problem", ["another CA", "another host"])
async def test_a_database_certificate_that_does_not_verify_stops_the_command_in_one_line(
    problem, config, database_url, pg_server_url, ca, other_ca, tmp_path, monkeypatch, capsys
) -> None:
    if problem == "another CA":
        server, trusted = other_ca, ca
    else:  # signed by the trusted CA, but for db.example, not 127.0.0.1
        server = local_ca(tmp_path / "elsewhere", names=("db.example",), label="trusted")
        trusted = server
    found = await terminator(server, postgres_target(pg_server_url), postgres=True)
    try:
        config["database"] = {"url": tls_database_url(database_url, found.port, trusted.ca_file)}
        config["redis"] = {"url": "off"}
        code = await asyncio.to_thread(run_cli, monkeypatch, Settings(**config), "prune")
    finally:
        await found.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith(
        f"receiptd: the database is not reachable at postgres@127.0.0.1:{found.port}/"
    )
    assert "certificate verify failed" in err[0]
    reason = "mismatch" if problem == "another host" else "unable to get local issuer"
    assert reason in err[0], err[0]


async def test_a_redis_certificate_that_does_not_verify_is_a_visible_cache_outage(
    config, tls_redis, other_ca, aiohttp_client
) -> None:
    config["redis"] = {"url": tls_redis_url(tls_redis.port, other_ca.ca_file)}
    client = await aiohttp_client(create_app(Settings(**config)))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200  # Redis is optional: reads come from PostgreSQL
    assert body["cache"] == "down"
    assert "certificate verify failed" in body["cache_reason"], body
    metrics = await (await client.get("/metrics")).text()
    assert "receiptd_cache_up 0.0" in metrics
    assert (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).status == 200


async def test_a_required_redis_that_does_not_verify_stops_serve(
    config, tls_redis, other_ca, tmp_path, monkeypatch
) -> None:
    config["redis"] = {"url": tls_redis_url(tls_redis.port, other_ca.ca_file), "required": True}
    server = TestServer(create_app(Settings(**config)))
    try:
        with pytest.raises(StartupFailure, match="certificate verify failed") as failed:
            await server.start_server()
    finally:
        await server.close()
    assert str(failed.value).startswith(f"Redis is not reachable at 127.0.0.1:{tls_redis.port}/0: ")
