"""SQL of refund requests and customers' consent (tables refund_requests, customer_consents).

Rows are opened in the ingest transaction of the store's statement, claimed by the sending
loop with a lease (`claimed_until`: FOR UPDATE SKIP LOCKED, so two workers never claim the
same row, and a crashed sender's claim lapses), and closed by the store's decision.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from entitlements.model import Store
from entitlements.refunds import OPEN, RefundRequest

INSERT = """
INSERT INTO refund_requests (id, store, notification_id, app_user_id, purchase_id,
    transaction_id, product_id, app, environment, reason, consumption_percentage,
    requested_at, deadline, status, next_attempt_at, decided_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (store, notification_id) DO NOTHING
"""

# The store's decision closes the open requests of the transaction it is about, or — when
# it names another transaction of the purchase (a renewal) — those of the purchase.
CLOSE = """
UPDATE refund_requests SET status = $4, decided_at = $5, claimed_until = NULL
WHERE store = $1 AND purchase_id = $2 AND status = ANY($6::text[])
  AND (transaction_id = $3 OR NOT EXISTS (
        SELECT 1 FROM refund_requests
        WHERE store = $1 AND purchase_id = $2 AND transaction_id = $3
          AND status = ANY($6::text[])))
RETURNING *
"""

CLAIM = """
UPDATE refund_requests SET claimed_until = $2, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM refund_requests
    WHERE status = 'pending' AND next_attempt_at <= $1
      AND (claimed_until IS NULL OR claimed_until <= $1)
    ORDER BY deadline, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING *
"""

FINISH = """
UPDATE refund_requests
SET status = $2, sent_at = $3, sent_body = $4::jsonb, last_error = $5, claimed_until = NULL
WHERE id = $1 AND status = 'pending'
"""

RETRY = """
UPDATE refund_requests SET next_attempt_at = $2, last_error = $3, claimed_until = NULL
WHERE id = $1 AND status = 'pending'
"""

EXPIRE = """
UPDATE refund_requests SET status = 'failed', last_error = $2, claimed_until = NULL
WHERE status = 'pending' AND deadline <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
RETURNING id
"""

SET_PREFERENCE = """
UPDATE refund_requests SET preference = $2 WHERE id = $1 AND status = 'pending'
RETURNING *
"""

PENDING_STATS = """
SELECT count(*) AS pending, min(deadline) AS nearest_deadline
FROM refund_requests WHERE status = 'pending'
"""

UPSERT_CONSENT = """
INSERT INTO customer_consents (app_user_id, consumption_data, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (app_user_id) DO UPDATE SET consumption_data = $2, updated_at = $3
RETURNING app_user_id, consumption_data, updated_at
"""


async def insert(
    conn: asyncpg.Connection,
    store: Store,
    request: RefundRequest,
    owner: str | None,
    *,
    status: str,
    first_attempt: datetime,
    decided_at: datetime | None,
    now: datetime,
) -> None:
    """Open `request` for `owner` (a repeat of the same store notification: nothing)."""
    await conn.execute(
        INSERT,
        uuid.uuid4(),
        store.value,
        request.notification_id,
        owner,
        request.purchase_id,
        request.transaction_id,
        request.product_id,
        request.app,
        request.environment,
        request.reason,
        request.consumption_percentage,
        request.requested_at,
        request.deadline,
        status,
        first_attempt,
        decided_at,
        now,
    )


async def close(
    conn: asyncpg.Connection,
    *,
    store: Store,
    purchase_id: str,
    transaction_id: str,
    status: str,
    at: datetime,
) -> list[asyncpg.Record]:
    """The store decided (`refunded` / `declined`): close the open requests it answers."""
    return list(
        await conn.fetch(CLOSE, store.value, purchase_id, transaction_id, status, at, list(OPEN))
    )


async def claim_due(
    conn: asyncpg.Connection, now: datetime, lease: timedelta, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` pending requests due at `now`, claimed until `now + lease`."""
    return list(await conn.fetch(CLAIM, now, now + lease, limit))


async def finish(
    conn: asyncpg.Connection,
    request_id: uuid.UUID,
    status: str,
    *,
    at: datetime | None,
    body: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """A claimed pending request ends as `status` (`sent`, `skipped`, `failed`); False when
    it was no longer pending (the store decided meanwhile)."""
    sent = json.dumps(body) if body is not None else None
    done: str = await conn.execute(FINISH, request_id, status, at, sent, error)
    return done.endswith(" 1")


async def retry(conn: asyncpg.Connection, request_id: uuid.UUID, at: datetime, error: str) -> None:
    """A claimed pending request is tried again at `at`."""
    await conn.execute(RETRY, request_id, at, error)


async def expire(conn: asyncpg.Connection, now: datetime, why: str) -> int:
    """Pending requests whose deadline passed, unclaimed, become `failed`; their number."""
    return len(await conn.fetch(EXPIRE, now, why))


async def set_preference(
    conn: asyncpg.Connection, request_id: uuid.UUID, preference: str
) -> asyncpg.Record | None:
    """Change a pending request's preference; None when it is not pending (or unknown)."""
    row: asyncpg.Record | None = await conn.fetchrow(SET_PREFERENCE, request_id, preference)
    return row


async def one(conn: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record | None:
    """One request by id."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM refund_requests WHERE id = $1", request_id
    )
    return row


async def listing(
    conn: asyncpg.Connection, statuses: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    """Requests in `statuses`: pending first (nearest deadline first), then the newest."""
    return list(
        await conn.fetch(
            """SELECT * FROM refund_requests WHERE status = ANY($1::text[])
            ORDER BY status <> 'pending', CASE WHEN status = 'pending' THEN deadline END,
                     requested_at DESC, id
            LIMIT $2""",
            list(statuses),
            limit,
        )
    )


async def of_customer(conn: asyncpg.Connection, app_user_id: str) -> list[asyncpg.Record]:
    """A customer's requests, newest first (the export, the console)."""
    return list(
        await conn.fetch(
            """SELECT * FROM refund_requests WHERE app_user_id = $1
            ORDER BY requested_at DESC, id""",
            app_user_id,
        )
    )


async def pending_stats(conn: asyncpg.Connection) -> tuple[int, datetime | None]:
    """How many requests are pending and the nearest deadline among them."""
    row = await conn.fetchrow(PENDING_STATS)
    assert row is not None
    return int(row["pending"]), row["nearest_deadline"]


async def set_consent(
    conn: asyncpg.Connection, app_user_id: str, consumption_data: bool, now: datetime
) -> asyncpg.Record:
    """Record (or withdraw) a customer's consent to share consumption data."""
    row = await conn.fetchrow(UPSERT_CONSENT, app_user_id, consumption_data, now)
    assert row is not None
    return row


async def consent(conn: asyncpg.Connection, app_user_id: str | None) -> asyncpg.Record | None:
    """The customer's recorded consent (None: never recorded, or no customer)."""
    if app_user_id is None:
        return None
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT app_user_id, consumption_data, updated_at FROM customer_consents"
        " WHERE app_user_id = $1",
        app_user_id,
    )
    return row


PURCHASE_OWNER = "SELECT app_user_id FROM purchases WHERE store = $1 AND purchase_id = $2"


async def purchase_owner(conn: asyncpg.Connection, store: str, purchase_id: str) -> str | None:
    """Who holds the purchase now."""
    owner: str | None = await conn.fetchval(PURCHASE_OWNER, store, purchase_id)
    return owner
