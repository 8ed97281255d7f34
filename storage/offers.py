"""SQL of offer signatures (table offer_signatures) and the history offers are decided from."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.codec import from_jsonable
from entitlements.model import PurchaseState

STATES = "SELECT state FROM purchases WHERE app_user_id = $1 ORDER BY id"

# The entitlement as each change-feed event showed it, when that was a trial or intro period.
OFFER_SNAPSHOTS = """
SELECT entitlements -> $2::text AS shown FROM customer_events
WHERE app_user_id = $1 AND entitlements -> $2::text ->> 'period_type' IN ('trial', 'intro')
LIMIT 1
"""

INSERT = """
INSERT INTO offer_signatures (app_user_id, offer, product_id, format, nonce, transaction_id,
    eligible, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def purchase_states(conn: asyncpg.Connection, app_user_id: str) -> list[PurchaseState]:
    """The stored state of every purchase of the customer."""
    out = []
    for row in await conn.fetch(STATES, app_user_id):
        raw = json.loads(row["state"]) if isinstance(row["state"], str) else row["state"]
        if raw:
            out.append(from_jsonable(PurchaseState, raw))
    return out


async def offer_snapshots(
    conn: asyncpg.Connection, app_user_id: str, entitlement: str
) -> list[dict[str, Any]]:
    """A change-feed snapshot of `entitlement` in a trial or intro period, if any."""
    rows = await conn.fetch(OFFER_SNAPSHOTS, app_user_id, entitlement)
    return [json.loads(r["shown"]) if isinstance(r["shown"], str) else r["shown"] for r in rows]


async def record(
    conn: asyncpg.Connection,
    *,
    app_user_id: str,
    offer: str,
    product_id: str,
    format_: str,
    nonce: str,
    transaction_id: str | None,
    eligible: bool | None,
    at: datetime,
) -> None:
    """Keep one signature issued."""
    await conn.execute(
        INSERT, app_user_id, offer, product_id, format_, nonce, transaction_id, eligible, at
    )
