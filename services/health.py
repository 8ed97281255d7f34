"""Whether this process can serve: the readiness rule of `/readyz`."""

from __future__ import annotations

import asyncpg

from storage.database import ping


async def database_ready(pool: asyncpg.Pool | None, seconds: float = 2) -> bool:
    """True when the database answers within `seconds` (False without a pool)."""
    if pool is None:
        return False
    try:
        await ping(pool, seconds)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True
