"""SQL of support's store actions (table store_actions) and the purchases they may act on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.model import Store

HELD = """
SELECT store, purchase_id, product_id, kind, status, will_renew,
    state->>'environment' AS environment, app
FROM purchases WHERE app_user_id = $1 AND NOT superseded ORDER BY store, purchase_id
"""

INSERT = """
INSERT INTO store_actions (id, app_user_id, store, purchase_id, action, request, status,
    detail, answer, actor, created_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb, $10, $11)
"""

EXTENSIONS_SINCE = """
SELECT purchase_id, count(*) AS done FROM store_actions
WHERE store = $1 AND purchase_id = ANY($2::text[]) AND action = 'extend'
  AND status = 'requested' AND created_at > $3
GROUP BY purchase_id
"""


async def held(conn: asyncpg.Connection, app_user_id: str) -> list[asyncpg.Record]:
    """The customer's purchases with what an action needs to know of them."""
    return list(await conn.fetch(HELD, app_user_id))


async def record(
    conn: asyncpg.Connection,
    *,
    app_user_id: str | None,
    store: Store,
    purchase_id: str,
    action: str,
    request: Mapping[str, Any],
    status: str,
    detail: str,
    answer: Mapping[str, Any],
    actor: str,
    at: datetime,
) -> None:
    """Keep one action and the store's answer."""
    await conn.execute(
        INSERT,
        uuid.uuid4(),
        app_user_id,
        store.value,
        purchase_id,
        action,
        json.dumps(dict(request)),
        status,
        detail,
        json.dumps(dict(answer), default=str),
        actor,
        at,
    )


async def extensions_since(
    conn: asyncpg.Connection, store: Store, purchase_ids: list[str], since: datetime
) -> dict[str, int]:
    """How many extensions of each purchase the store accepted since `since` (purchases
    never extended are left out)."""
    rows = await conn.fetch(EXTENSIONS_SINCE, store.value, purchase_ids, since)
    return {r["purchase_id"]: int(r["done"]) for r in rows}
