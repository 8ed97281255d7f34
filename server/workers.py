"""`receiptd serve --workers N` (contract §1): N serving processes on one port.

The parent serves nothing itself. It starts the embedded PostgreSQL / Redis once when no URL
is configured (the children get the URLs, so N processes never race to start the same
servers), applies the migrations once, then runs N children: `receiptd serve` again, each
binding the port with SO_REUSEPORT (the kernel spreads connections across them) and each
with its own asyncpg pool, Redis client and in-process read cache, kept coherent by the
cache's invalidation channel (cache/local.py).

SIGTERM or SIGINT to the parent is forwarded as SIGTERM to every child; each finishes its
in-flight requests within `server.shutdown_timeout` (children still running a few seconds
after that are killed), then the parent stops the embedded servers and exits 0. A child that
exits on its own is a failure: the parent stops the others and exits 1, so the supervisor
(systemd, Kubernetes) restarts the whole set rather than serving with fewer workers unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import asyncpg
import structlog

from config.settings import Settings
from server.embedded import EmbeddedRedis, database_url
from storage.migrations import migrate

log = structlog.get_logger(__name__)

_KILL_GRACE_SECONDS = 5.0


async def supervise(settings: Settings, workers: int, child_args: Sequence[str]) -> int:
    """Run `workers` children of `receiptd serve <child_args>` until a signal; the exit code."""
    configured_db = settings.database.url.get_secret_value()
    configured_redis = settings.redis.url.get_secret_value()
    async with contextlib.AsyncExitStack() as stack:
        db_url = await stack.enter_async_context(
            database_url(configured_db, settings.server.data_dir)
        )
        redis_url = configured_redis
        if not redis_url:
            embedded = EmbeddedRedis(settings.server.data_dir)
            redis_url = await embedded.start()
            stack.push_async_callback(embedded.stop)
        conn = await asyncpg.connect(db_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url}
        return await _run_children(settings, workers, child_args, env)
    return 1  # pragma: no cover  (the context manager does not swallow)


async def _run_children(
    settings: Settings, workers: int, child_args: Sequence[str], env: dict[str, str]
) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    children = []
    for index in range(workers):
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "receiptd",
                *child_args,
                "--worker-index",
                str(index),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
        )
    log.info("workers_started", workers=workers, pids=[c.pid for c in children])
    exits = [asyncio.ensure_future(c.wait()) for c in children]
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
    failed = not stopping.is_set()
    if failed:
        dead = [c.pid for c in children if c.returncode is not None]
        log.error("worker_exited", pids=dead, action="stopping the other workers")
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    _done, pending = await asyncio.wait(
        exits, timeout=settings.server.shutdown_timeout + _KILL_GRACE_SECONDS
    )
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
    if pending:
        await asyncio.wait(pending)
    stop.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    log.info("workers_stopped", codes=[c.returncode for c in children])
    return 1 if failed else 0
