"""Running work on the database: the one "database unavailable" wrapper of the service.

Every repository function takes the connection it runs on; callers hand their work to `run`,
which turns "PostgreSQL is not there right now" into `DatabaseUnavailable` (→ 503, the store
or the app retries). A bug (a constraint violation, bad SQL) is not caught here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog

from entitlements.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Extra writes a caller needs committed atomically with the state it ingests (a pending
# store acknowledgement): they run inside the ingest transaction, after the journal insert.
TransactionWrite = Callable[[asyncpg.Connection], Awaitable[None]]

# Errors that mean "the database is not there right now" rather than a bug.
DB_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
)


# Backend pids of pooled connections that took session state (a session advisory lock):
# only those get asyncpg's reset query on release (see `reset_session`).
_SESSION_STATE: set[int] = set()


def holds_session_state(conn: asyncpg.Connection) -> None:
    """Mark `conn` as holding session state (call before taking a session advisory lock):
    the pool's reset then runs asyncpg's reset query (pg_advisory_unlock_all, …) on it."""
    _SESSION_STATE.add(conn.get_server_pid())


async def reset_session(conn: asyncpg.Connection) -> None:
    """The pool's `reset`: asyncpg's default reset query costs a round trip on every release,
    ~1 in 7 of an ingest's; run it only on connections marked by `holds_session_state`.
    (The pool rolls back an open transaction before this, as with the default reset; our
    code sets no session variables, LISTENs or holds cursors outside transactions.)"""
    pid = conn.get_server_pid()
    if pid in _SESSION_STATE:
        _SESSION_STATE.discard(pid)
        await conn.execute(conn.get_reset_query())


async def ping(pool: asyncpg.Pool, seconds: float) -> None:
    """Ask the database for an answer within `seconds` (readiness); raises when it has none."""
    async with asyncio.timeout(seconds):
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")


async def run(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a pooled connection; the database being away is DatabaseUnavailable."""
    try:
        async with pool.acquire() as conn:
            return await work(conn)
    except DB_DOWN_ERRORS as exc:
        log.warning("database_unavailable", error=type(exc).__name__)
        raise DatabaseUnavailable from exc
