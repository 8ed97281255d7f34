"""SQL of `receiptd replay`: the purchases to check, the journal entries that touched them,
and the checks a fix makes under the purchase's row lock. Functions take their connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.model import Store
from entitlements.replay import JournalEntry, StoredPurchase
from entitlements.repository import purchase_view

# The version of migrations/0005: from its application on, every entry keeps its store
# reads and every submission is journaled.
JOURNAL_COMPLETE_VERSION = 5

JOURNAL_COMPLETE_SINCE = "SELECT applied_at FROM schema_migrations WHERE version = $1"
CUSTOMER_OF = """
SELECT coalesce((SELECT app_user_id FROM customer_aliases WHERE alias = $1), $1)
"""
# The selection: every purchase, or a customer's ($1), or those an entry received at or
# after $2 touched.
_SELECTED = """
FROM purchases p
WHERE ($1::text IS NULL OR p.app_user_id = $1)
  AND ($2::timestamptz IS NULL OR EXISTS (
        SELECT 1 FROM store_notifications n
        WHERE n.store = p.store AND n.purchase_ids @> ARRAY[p.purchase_id]
          AND n.received_at >= $2))
"""
COUNT_SELECTED = "SELECT count(*)" + _SELECTED
# One page of it: the next $4 rows after row id $3.
SELECT_PAGE = (
    """
SELECT p.id, p.store, p.purchase_id, p.app_user_id, p.created_at, p.state, p.state_updated_at,
       p.product_id, p.kind, p.status, p.period_type, p.will_renew, p.expires_at,
       p.grace_period_expires_at, p.purchased_at, p.is_sandbox, p.unsubscribe_detected_at,
       p.billing_issue_detected_at, p.revoked_at, p.ownership, p.superseded"""
    + _SELECTED
    + """  AND p.id > $3
ORDER BY p.id
LIMIT $4
"""
)
# Every entry whose events were applied to one of these purchases, in journal order.
SELECT_ENTRIES = """
SELECT id, store, message_id, notification_type, result, payload, reads, purchase_ids,
       received_at, payload_pruned_at
FROM store_notifications
WHERE store = $1 AND purchase_ids && $2::text[]
ORDER BY id
"""
LOCK_PURCHASE = """
SELECT state, app_user_id FROM purchases WHERE store = $1 AND purchase_id = $2 FOR UPDATE
"""
LATEST_ENTRY = """
SELECT max(id) FROM store_notifications WHERE store = $1 AND purchase_ids @> ARRAY[$2]::text[]
"""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which purchases to replay: all, a customer's (an alias means its customer), those an
    entry received at or after `since` touched; both filters together intersect."""

    since: datetime | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class Locked:
    """A purchase row under its lock, for a fix."""

    state: dict[str, Any] | None
    owner: str | None
    latest_entry: int | None


async def journal_complete_since(conn: asyncpg.Connection) -> datetime | None:
    """When the journal started keeping everything replay needs (None: never, so far)."""
    applied: datetime | None = await conn.fetchval(JOURNAL_COMPLETE_SINCE, JOURNAL_COMPLETE_VERSION)
    return applied


async def customer_of(conn: asyncpg.Connection, app_user_id: str) -> str:
    """The customer an id stands for (itself, or the customer an alias was merged into)."""
    customer: str = await conn.fetchval(CUSTOMER_OF, app_user_id)
    return customer


async def count_selected(conn: asyncpg.Connection, selection: Selection) -> int:
    return int(await conn.fetchval(COUNT_SELECTED, selection.customer, selection.since))


async def selected_page(
    conn: asyncpg.Connection, selection: Selection, after_id: int, limit: int
) -> list[tuple[int, StoredPurchase]]:
    """The next `limit` selected purchases after row id `after_id`, with their row ids."""
    rows = await conn.fetch(SELECT_PAGE, selection.customer, selection.since, after_id, limit)
    return [(r["id"], _stored(r)) for r in rows]


async def entries_touching(
    conn: asyncpg.Connection, store: Store, purchase_ids: Sequence[str]
) -> list[JournalEntry]:
    """Every journal entry applied to one of these purchases of `store`, oldest first."""
    rows = await conn.fetch(SELECT_ENTRIES, store.value, sorted(set(purchase_ids)))
    return [
        JournalEntry(
            id=r["id"],
            store=Store(r["store"]),
            message_id=r["message_id"],
            notification_type=r["notification_type"],
            result=r["result"],
            payload=r["payload"],
            reads=_json(r["reads"]),
            purchase_ids=tuple(r["purchase_ids"]),
            received_at=r["received_at"],
            payload_pruned_at=r["payload_pruned_at"],
        )
        for r in rows
    ]


async def lock_for_fix(conn: asyncpg.Connection, store: Store, purchase_id: str) -> Locked | None:
    """Lock the purchase row for the transaction; its state, owner and latest journal entry
    as they are now (None when the row is gone)."""
    row = await conn.fetchrow(LOCK_PURCHASE, store.value, purchase_id)
    if row is None:
        return None
    latest = await conn.fetchval(LATEST_ENTRY, store.value, purchase_id)
    return Locked(_json(row["state"]), row["app_user_id"], latest)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _stored(r: asyncpg.Record) -> StoredPurchase:
    return StoredPurchase(
        store=Store(r["store"]),
        purchase_id=r["purchase_id"],
        owner=r["app_user_id"],
        state=_json(r["state"]),
        view=purchase_view(r),
        state_updated_at=r["state_updated_at"],
        created_at=r["created_at"],
    )
