"""Running work on the database: the one "database unavailable" wrapper of the service.

Every repository function takes the connection it runs on; callers hand their work to `run`,
which turns "PostgreSQL is not there right now" into `DatabaseUnavailable` (→ 503, the store
or the app retries). A bug (a constraint violation, bad SQL) is not caught here.
"""

from __future__ import annotations

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


async def run(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a pooled connection; the database being away is DatabaseUnavailable."""
    try:
        async with pool.acquire() as conn:
            return await work(conn)
    except DB_DOWN_ERRORS as exc:
        log.warning("database_unavailable", error=type(exc).__name__)
        raise DatabaseUnavailable from exc
