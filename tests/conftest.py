"""Shared fixtures: real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are
set), a migrated template database cloned per test, a settable clock, and an app client.

The clock starts at TEST_CLOCK_START (ISO 8601 with a UTC offset, e.g. 2071-03-01T00:00:00Z),
else at DEFAULT_TEST_NOW. Tests date their store data from it, never from the wall clock, so
`make test-clocks` can run them with the clock decades ahead or behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import jwt
import pytest
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.app import create_app
from server.embedded import EmbeddedPostgres, EmbeddedRedis
from simulators.fake_play import FakePlay
from storage.migrations import migrate
from tests import logscan

ADMIN_KEY = "test-admin-key-0123456789"
READER_KEY = "test-reader-key-0123456789"
WRITER_KEY = "test-writer-key-0123456789"
USER_TOKEN_SECRET = "test-user-token-secret-0123456789abcdef"
USER_TOKEN_ISSUER = "https://id.receiptd.test/"
USER_TOKEN_AUDIENCE = "receiptd"
DEFAULT_TEST_NOW = "2026-11-25T10:00:00Z"
TEST_NOW_VARIABLE = "TEST_CLOCK_START"


def clock_start() -> datetime:
    """The injected clock's first instant: $TEST_CLOCK_START, else DEFAULT_TEST_NOW."""
    raw = os.environ.get(TEST_NOW_VARIABLE) or DEFAULT_TEST_NOW
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise pytest.UsageError(
            f"{TEST_NOW_VARIABLE}={raw!r}: expected ISO 8601 with an offset, "
            "e.g. 2071-03-01T00:00:00Z"
        )
    return start.astimezone(UTC)


def pytest_configure(config: pytest.Config) -> None:
    clock_start()  # a malformed TEST_CLOCK_START stops the run before any test
    logscan.register(ADMIN_KEY, READER_KEY, WRITER_KEY, USER_TOKEN_SECRET)
    _register_play_tokens()


def _register_play_tokens() -> None:
    """Every purchase token a test gives the fake Play API becomes a secret of the log scan."""
    if getattr(FakePlay, "_log_scan_registers", False):
        return
    set_subscription, set_product = FakePlay.set_subscription, FakePlay.set_product

    def registering_subscription(self: FakePlay, package: str, token: str, purchase: Any) -> None:
        logscan.register(token)
        set_subscription(self, package, token, purchase)

    def registering_product(
        self: FakePlay, package: str, product_id: str, token: str, body: Any
    ) -> None:
        logscan.register(token)
        set_product(self, package, product_id, token, body)

    FakePlay.set_subscription = registering_subscription  # type: ignore[method-assign]
    FakePlay.set_product = registering_product  # type: ignore[method-assign]
    FakePlay._log_scan_registers = True  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """The log scan (tests/logscan.py): a phase whose output leaks a secret fails."""
    report: pytest.TestReport = yield
    logscan.scan_report(report)
    return report


def pytest_report_header(config: pytest.Config) -> str:
    return f"injected clock starts at {clock_start().isoformat()} (${TEST_NOW_VARIABLE})"


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


MEMORY_FS = Path("/dev/shm")
MEMORY_FS_ROOM = 2 * 2**30


def scratch_dir() -> str:
    """Where the embedded servers of a test session keep their data: the memory file system
    when it has room, else /tmp. Throwaway data gains nothing from a disk, and on a disk
    shared with other work each template clone waits for writes behind it (a clone took
    0.07-0.4 s on a busy /tmp, 0.015 s in memory). Short either way: unix socket paths are
    limited to ~107 bytes."""
    try:
        if os.access(MEMORY_FS, os.W_OK) and shutil.disk_usage(MEMORY_FS).free > MEMORY_FS_ROOM:
            return str(MEMORY_FS)
    except OSError:
        pass
    return "/tmp"


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rcd-", dir=scratch_dir()) as tmp:
        yield Path(tmp)


# The session's own throwaway cluster needs no crash safety: without fsync a clone of the
# template (CREATE DATABASE, once per test) and its drop cost a fraction, and FILE_COPY, which
# checkpoints, becomes the quicker strategy. A server given by DATABASE_URL is left as it is.
THROWAWAY_CLUSTER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
async def pg_server_url(data_root: Path) -> AsyncIterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    embedded = EmbeddedPostgres(data_root / "pg")
    url = await embedded.start()
    conn = await asyncpg.connect(url)
    try:
        for setting, value in THROWAWAY_CLUSTER.items():
            await conn.execute(f"ALTER SYSTEM SET {setting} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10  # the reload is a signal: wait until it took effect
        while await conn.fetchval("SHOW fsync") != "off" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    yield url
    await embedded.stop()


@pytest.fixture(scope="session")
async def template_db(pg_server_url: str) -> str:
    """A database with every migration applied, cloned by each test."""
    name = f"receiptd_tpl_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    tpl = await asyncpg.connect(with_database(pg_server_url, name))
    try:
        await migrate(tpl)
    finally:
        await tpl.close()
    return name


class Clones:
    """Fresh copies of the template database, one per taker, cloned one ahead of need.

    Each `take()` hands out a database nobody has used and starts cloning the next one, which
    the server does while the test runs; `give_back()` drops a database in the background. All
    of it goes through one admin connection, one statement at a time.
    """

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url = server_url
        self.template = template
        self._lock = asyncio.Lock()
        self._conn: asyncpg.Connection | None = None
        self._strategy = ""
        self._next: asyncio.Future[str] | None = None
        self._drops: set[asyncio.Future[None]] = set()

    async def open(self) -> None:
        self._conn = await asyncpg.connect(self.server_url)
        version = self._conn.get_server_version()
        if version.major >= 15 and await self._conn.fetchval("SHOW fsync") == "off":
            self._strategy = " STRATEGY FILE_COPY"  # WAL_LOG, the default, is slower then

    async def _execute(self, sql: str) -> None:
        assert self._conn is not None
        async with self._lock:
            await self._conn.execute(sql)

    async def _clone(self, prefix: str) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"{self._strategy}')
        return name

    async def take(self) -> str:
        """The name of a new database cloned from the template, for the caller alone."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._clone("t_"))
        name = await self._next
        self._next = asyncio.ensure_future(self._clone("t_"))
        return name

    async def take_url(self) -> str:
        """`take()` as a URL."""
        return with_database(self.server_url, await self.take())

    def give_back(self, name: str) -> None:
        """Drop `name` (its users gone or not) in the background."""
        self._drops = {t for t in self._drops if not t.done() or t.exception() is not None}
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        self._drops.add(asyncio.ensure_future(self._execute(sql)))

    async def settle(self) -> None:
        """Wait for the drops given back so far (a failed drop fails here)."""
        drops, self._drops = self._drops, set()
        await asyncio.gather(*drops)

    async def close(self) -> None:
        if self._next is not None:
            self.give_back(await self._next)
            self._next = None
        await self.settle()
        if self._conn is not None:
            await self._conn.close()


@pytest.fixture(scope="session")
async def clones(pg_server_url: str, template_db: str) -> AsyncIterator[Clones]:
    found = Clones(pg_server_url, template_db)
    await found.open()
    yield found
    await found.close()


@pytest.fixture
async def database_url(clones: Clones) -> AsyncIterator[str]:
    name = await clones.take()
    yield with_database(clones.server_url, name)
    clones.give_back(name)


@pytest.fixture(scope="session")
async def redis_server_url(data_root: Path) -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    embedded = EmbeddedRedis(data_root / "redis")
    url = await embedded.start()
    yield url
    await embedded.stop()


@pytest.fixture
async def redis_url(redis_server_url: str) -> str:
    client = aredis.Redis.from_url(redis_server_url)
    await client.flushdb()
    await client.aclose()
    return redis_server_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@dataclass
class Clock:
    """A settable clock injected into the app: tests move time instead of sleeping."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(clock_start())


def base_config(database_url: str, redis_url: str, data_dir: Path) -> dict[str, Any]:
    """Plain settings values for tests; extend per test."""
    return {
        "server": {"data_dir": data_dir},
        "database": {"url": database_url},
        "redis": {"url": redis_url},
        "entitlements": {
            "premium": {"products": ["com.example.premium.monthly", "premium_monthly"]},
            "pro": {"products": ["com.example.pro.yearly"]},
        },
        "auth": {
            "api_keys": [
                {"name": "admin", "key": ADMIN_KEY, "scopes": ["admin"]},
                {"name": "reader", "key": READER_KEY, "scopes": ["customers:read"]},
                {"name": "writer", "key": WRITER_KEY, "scopes": ["purchases:write"]},
            ],
            "user_tokens": {
                "secret": USER_TOKEN_SECRET,
                "issuer": USER_TOKEN_ISSUER,
                "audience": USER_TOKEN_AUDIENCE,
            },
        },
    }


@pytest.fixture
def config(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, Any]:
    return base_config(database_url, redis_url, tmp_path)


AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(
    database_url: str,
    redis_url: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    clock: Clock,
) -> AppFactory:
    """Start the real app (real pool, cache, migrations) from a settings dict.

    Depends on the database and Redis fixtures so that they are torn down after the app.
    """

    async def factory(cfg: dict[str, Any]) -> TestClient[web.Request, web.Application]:
        return await aiohttp_client(create_app(Settings(**cfg), clock=clock))

    return factory


@pytest.fixture
async def client(
    make_client: AppFactory, config: dict[str, Any]
) -> TestClient[web.Request, web.Application]:
    return await make_client(config)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def user_token(
    sub: str, *, secret: str = USER_TOKEN_SECRET, exp_in: int = 600, **claims: Any
) -> str:
    """An HS256 app user token for `sub` as the test configuration's identity provider would
    issue it. `exp` from the real clock on purpose: the service checks it with PyJWT against
    the real clock, not the injected one (an auth token, not store data)."""
    body = {
        "sub": sub,
        "iss": USER_TOKEN_ISSUER,
        "aud": USER_TOKEN_AUDIENCE,
        "exp": int(time.time()) + exp_in,
        **claims,
    }
    return jwt.encode(body, secret, algorithm="HS256")


def user_auth(sub: str) -> dict[str, str]:
    """The Authorization header of `user_token(sub)`."""
    return auth(user_token(sub))
