"""SQL of the journal's retention: dropping raw store payloads while the rows stay.

A pruned row keeps its store message id (so a redelivery is still answered `duplicate`), its
type, subtype, store time, purchase ids and result (the console's timeline); `payload` and the
store API answers kept with it (`reads`: they carry the same personal data) become NULL and
`payload_pruned_at` records when. Every function takes its connection.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from storage.database import holds_session_state

# pg_advisory_lock key held for a whole pruning pass, so replicas (and `receiptd prune`)
# never prune at once. Next to MIGRATION_LOCK_KEY ("receiptd") and FEED_LOCK_KEY.
RETENTION_LOCK_KEY = 0x7265636569707466

TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"

# How many payloads a pass will drop; served by the partial index on received_at.
COUNT_PRUNABLE = """
SELECT count(*) FROM store_notifications WHERE payload IS NOT NULL AND received_at < $1
"""
# One bounded batch, oldest first: the sub-select walks store_notifications_received_idx
# (partial: payload IS NOT NULL, so pruned rows drop out of it) and stops at the limit; rows
# another transaction holds are skipped rather than waited for, so no statement holds many
# locks or waits long. Returns how many rows it pruned.
PRUNE_BATCH = """
WITH batch AS (
    SELECT id FROM store_notifications
    WHERE payload IS NOT NULL AND received_at < $1
    ORDER BY received_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), pruned AS (
    UPDATE store_notifications AS n SET payload = NULL, reads = NULL, payload_pruned_at = $2
    FROM batch WHERE n.id = batch.id
    RETURNING 1
)
SELECT count(*) FROM pruned
"""


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the retention lock for this session if nobody holds it; False otherwise."""
    holds_session_state(conn)
    return bool(await conn.fetchval(TRY_LOCK, RETENTION_LOCK_KEY))


async def lock(conn: asyncpg.Connection) -> None:
    """Take the retention lock for this session, waiting for its holder to finish."""
    holds_session_state(conn)
    await conn.execute(LOCK, RETENTION_LOCK_KEY)


async def unlock(conn: asyncpg.Connection) -> None:
    """Release the retention lock taken by this session."""
    await conn.execute(UNLOCK, RETENTION_LOCK_KEY)


async def count_prunable(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """How many stored payloads were received before `cutoff`."""
    return int(await conn.fetchval(COUNT_PRUNABLE, cutoff))


async def prune_batch(
    conn: asyncpg.Connection, cutoff: datetime, pruned_at: datetime, limit: int
) -> int:
    """Drop up to `limit` payloads received before `cutoff` (oldest first), marking them
    pruned at `pruned_at`; returns how many were dropped."""
    return int(await conn.fetchval(PRUNE_BATCH, cutoff, pruned_at, limit))
