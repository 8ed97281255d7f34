"""SQL of pending Play acknowledgements (table play_acknowledgements). Functions take the
connection they run on (see storage.database.run); they return our types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

AckKind = Literal["subscription", "product"]

INSERT_ACK = """
INSERT INTO play_acknowledgements
    (kind, package_name, product_id, purchase_token, created_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (kind, package_name, product_id, purchase_token) DO NOTHING
"""
# Claims never-tried rows of one token for the inline attempt right after commit; the
# lease (next_attempt_at) keeps the retry task off them while the attempt is in flight.
CLAIM_FRESH = """
UPDATE play_acknowledgements
SET attempts = attempts + 1, next_attempt_at = $3
WHERE package_name = $1 AND purchase_token = $2 AND attempts = 0
RETURNING id, kind, package_name, product_id, purchase_token, created_at, attempts
"""
# Claims a bounded batch of due rows; SKIP LOCKED lets several replicas share the work.
CLAIM_DUE = """
UPDATE play_acknowledgements
SET attempts = attempts + 1, next_attempt_at = $2
WHERE id IN (
    SELECT id FROM play_acknowledgements
    WHERE next_attempt_at <= $1
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, package_name, product_id, purchase_token, created_at, attempts
"""
DELETE_ACK = "DELETE FROM play_acknowledgements WHERE id = $1"
RESCHEDULE_ACK = """
UPDATE play_acknowledgements SET next_attempt_at = $2, last_error = $3 WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class AckRequest:
    """A purchase to acknowledge: subscriptions by their line item's productId."""

    kind: AckKind
    package_name: str
    product_id: str
    purchase_token: str


@dataclass(frozen=True, slots=True)
class PendingAck:
    """A claimed row of play_acknowledgements."""

    id: int
    request: AckRequest
    created_at: datetime
    attempts: int


async def insert_acks(
    conn: asyncpg.Connection, requests: Sequence[AckRequest], now: datetime, first_try: datetime
) -> None:
    """Record pending acknowledgements (idempotent); the retry task may try from `first_try`."""
    await conn.executemany(
        INSERT_ACK,
        [
            (r.kind, r.package_name, r.product_id, r.purchase_token, now, first_try)
            for r in requests
        ],
    )


async def claim_fresh(
    conn: asyncpg.Connection, package_name: str, token: str, lease_until: datetime
) -> list[PendingAck]:
    """Claim this token's rows that no one has tried yet."""
    return [_pending(r) for r in await conn.fetch(CLAIM_FRESH, package_name, token, lease_until)]


async def claim_due(
    conn: asyncpg.Connection, now: datetime, lease_until: datetime, limit: int
) -> list[PendingAck]:
    """Claim up to `limit` rows whose next attempt is due."""
    return [_pending(r) for r in await conn.fetch(CLAIM_DUE, now, lease_until, limit)]


async def delete_ack(conn: asyncpg.Connection, ack_id: int) -> None:
    """Remove a pending acknowledgement (done, or abandoned past the window)."""
    await conn.execute(DELETE_ACK, ack_id)


async def reschedule_ack(
    conn: asyncpg.Connection, ack_id: int, next_attempt_at: datetime, error: str
) -> None:
    """Try this acknowledgement again at `next_attempt_at`, noting the error (500 chars)."""
    await conn.execute(RESCHEDULE_ACK, ack_id, next_attempt_at, error[:500])


def _pending(r: asyncpg.Record) -> PendingAck:
    request = AckRequest(r["kind"], r["package_name"], r["product_id"], r["purchase_token"])
    return PendingAck(r["id"], request, r["created_at"], r["attempts"])
