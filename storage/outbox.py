"""SQL of outbound webhook delivery (webhook_endpoints, webhook_deliveries). Functions take
the connection they run on (see storage.database.run); they return our types.

customer_events is the outbox: its ids are in commit order (see repository.record_changes),
so an endpoint's cursor over it never skips an event that commits later. Handing copies the
events after the cursor into delivery rows; a row lives until its event is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# A new endpoint starts at the end of the feed: it receives what commits from now on.
REGISTER = """
INSERT INTO webhook_endpoints (endpoint_key, feed_cursor, created_at)
VALUES ($1, (SELECT coalesce(max(id), 0) FROM customer_events), $2)
ON CONFLICT (endpoint_key) DO NOTHING
"""
# One statement: lock the endpoint (replicas hand in turn), hand the next events in id
# order, move the cursor to the last one handed. Returns how many were handed.
HAND = """
WITH endpoint AS (
    SELECT feed_cursor FROM webhook_endpoints WHERE endpoint_key = $1 FOR UPDATE
), fresh AS (
    SELECT e.id FROM customer_events e, endpoint
    WHERE e.id > endpoint.feed_cursor ORDER BY e.id LIMIT $3
), handed AS (
    INSERT INTO webhook_deliveries (endpoint_key, feed_id, handed_at, next_attempt_at)
    SELECT $1, id, $2, $2 FROM fresh
    ON CONFLICT (endpoint_key, feed_id) DO NOTHING
), moved AS (
    UPDATE webhook_endpoints SET feed_cursor = (SELECT max(id) FROM fresh)
    WHERE endpoint_key = $1 AND EXISTS (SELECT 1 FROM fresh)
)
SELECT count(*) FROM fresh
"""
# Claims due deliveries for one attempt each. A delivery is due when its time has come, no
# attempt holds its lease, and no earlier event of the same customer is still undelivered to
# this endpoint (per-customer order; other customers are not held up). SKIP LOCKED lets
# replicas claim side by side; the lease keeps the claimed rows to the claimer until the
# attempt's outcome is written; `attempts` fences a late outcome of an expired lease.
CLAIM = """
WITH due AS (
    SELECT d.feed_id
    FROM webhook_deliveries d
    JOIN customer_events e ON e.id = d.feed_id
    WHERE d.endpoint_key = $1
      AND d.next_attempt_at <= $2
      AND (d.leased_until IS NULL OR d.leased_until <= $2)
      AND NOT EXISTS (
          SELECT 1
          FROM customer_events pe
          JOIN webhook_deliveries p ON p.endpoint_key = d.endpoint_key AND p.feed_id = pe.id
          WHERE pe.app_user_id = e.app_user_id AND pe.id < d.feed_id
      )
    ORDER BY d.feed_id
    LIMIT $4
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries w
SET attempts = w.attempts + 1, leased_until = $3, last_attempt_at = $2
FROM due, customer_events e
WHERE w.endpoint_key = $1 AND w.feed_id = due.feed_id AND e.id = w.feed_id
RETURNING w.feed_id, w.attempts,
          e.event_id, e.sequence, e.app_user_id, e.type, e.created_at, e.entitlements
"""
DELIVERED = """
WITH gone AS (
    DELETE FROM webhook_deliveries WHERE endpoint_key = $1 AND feed_id = $2
)
UPDATE webhook_endpoints
SET last_attempt_at = greatest(last_attempt_at, $3),
    last_success_at = greatest(last_success_at, $3)
WHERE endpoint_key = $1
"""
FAILED = """
WITH retry AS (
    UPDATE webhook_deliveries
    SET next_attempt_at = $4, leased_until = NULL, last_error = $5
    WHERE endpoint_key = $1 AND feed_id = $2 AND attempts = $3
)
UPDATE webhook_endpoints
SET last_attempt_at = greatest(last_attempt_at, $6),
    last_error = $5, last_error_at = $6
WHERE endpoint_key = $1
"""
STATES = """
SELECT w.endpoint_key, w.feed_cursor, w.created_at, w.last_attempt_at, w.last_success_at,
       w.last_error, w.last_error_at,
       d.pending + f.unhanded AS pending, d.in_flight, d.retrying, d.next_retry_at,
       least(d.oldest, f.oldest) AS oldest_pending_at
FROM webhook_endpoints w
CROSS JOIN LATERAL (
    SELECT count(*) AS pending,
           count(*) FILTER (WHERE dd.leased_until > $2) AS in_flight,
           count(*) FILTER (WHERE dd.last_error IS NOT NULL) AS retrying,
           min(dd.next_attempt_at) FILTER (
               WHERE dd.last_error IS NOT NULL
                 AND (dd.leased_until IS NULL OR dd.leased_until <= $2)
           ) AS next_retry_at,
           min(e.created_at) AS oldest
    FROM webhook_deliveries dd JOIN customer_events e ON e.id = dd.feed_id
    WHERE dd.endpoint_key = w.endpoint_key
) d
CROSS JOIN LATERAL (
    SELECT count(*) AS unhanded, min(created_at) AS oldest
    FROM customer_events WHERE id > w.feed_cursor
) f
WHERE w.endpoint_key = ANY($1::text[])
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with the feed row it delivers."""

    feed_id: int
    attempt: int  # 1 for the first attempt; the fencing token of this claim
    event: asyncpg.Record  # the customer_events row (see feed.event_object)


@dataclass(frozen=True, slots=True)
class EndpointState:
    """Where one endpoint stands (pending counts events handed or not yet handed)."""

    endpoint_key: str
    feed_cursor: int
    created_at: datetime
    pending: int
    in_flight: int
    retrying: int
    oldest_pending_at: datetime | None
    next_retry_at: datetime | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


async def register(conn: asyncpg.Connection, endpoint_key: str, now: datetime) -> None:
    """Create the endpoint's row at the end of the feed, unless it exists (idempotent)."""
    await conn.execute(REGISTER, endpoint_key, now)


async def hand(conn: asyncpg.Connection, endpoint_key: str, now: datetime, limit: int) -> int:
    """Hand up to `limit` events after the cursor to the endpoint; returns how many."""
    return int(await conn.fetchval(HAND, endpoint_key, now, limit))


async def claim(
    conn: asyncpg.Connection, endpoint_key: str, now: datetime, lease_until: datetime, limit: int
) -> list[Claimed]:
    """Claim up to `limit` due deliveries of the endpoint, oldest first."""
    rows = await conn.fetch(CLAIM, endpoint_key, now, lease_until, limit)
    claimed = [Claimed(r["feed_id"], r["attempts"], r) for r in rows]
    return sorted(claimed, key=lambda c: c.feed_id)


async def delivered(
    conn: asyncpg.Connection, endpoint_key: str, feed_id: int, now: datetime
) -> None:
    """The receiver took the event: forget the delivery, note the success."""
    await conn.execute(DELIVERED, endpoint_key, feed_id, now)


async def failed(
    conn: asyncpg.Connection,
    endpoint_key: str,
    claimed: Claimed,
    *,
    next_attempt_at: datetime,
    error: str,
    now: datetime,
) -> None:
    """The attempt failed: schedule the next one (unless a newer claim owns the row)."""
    await conn.execute(
        FAILED, endpoint_key, claimed.feed_id, claimed.attempt, next_attempt_at, error, now
    )


async def states(
    conn: asyncpg.Connection, endpoint_keys: list[str], now: datetime
) -> dict[str, EndpointState]:
    """The state of each of these endpoints (those registered), by key."""
    rows = await conn.fetch(STATES, endpoint_keys, now)
    return {r["endpoint_key"]: EndpointState(**dict(r)) for r in rows}
