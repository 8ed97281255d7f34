"""SQL of the operator console: its sessions, the customer search, a customer's timeline and
the journal's pages. Functions take their connection and return plain values or our types;
the business charts' SQL is in `storage.console_metrics`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.customers import ENTRIES_OF

INSERT_SESSION = """
INSERT INTO console_sessions
    (token_sha256, key_name, key_binding, csrf_token, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
SELECT_SESSION = """
SELECT key_name, key_binding, csrf_token, expires_at FROM console_sessions
WHERE token_sha256 = $1 AND expires_at > $2
"""
DELETE_SESSION = "DELETE FROM console_sessions WHERE token_sha256 = $1"
DELETE_EXPIRED_SESSIONS = "DELETE FROM console_sessions WHERE expires_at <= $1"

# A customer found by its id (or an alias), or by a purchase's store id (the original
# transaction id or the purchase token both live in purchases.purchase_id).
SEARCH = """
SELECT app_user_id, 'app user id' AS matched FROM customers
WHERE app_user_id = $1 AND erased_at IS NULL
UNION
SELECT app_user_id, 'alias' AS matched FROM customer_aliases WHERE alias = $1
UNION
SELECT app_user_id, CASE store WHEN 'app_store' THEN 'original transaction id'
                               ELSE 'purchase token' END AS matched
FROM purchases WHERE purchase_id = $1 AND app_user_id IS NOT NULL
ORDER BY 1
LIMIT 20
"""
CUSTOMER_ROW = """
SELECT created_at, suspended_at, erased_at FROM customers WHERE app_user_id = $1
"""
ALIASES = "SELECT alias FROM customer_aliases WHERE app_user_id = $1 ORDER BY alias"
PURCHASE_EXTRAS = """
SELECT store, purchase_id, superseded, state_updated_at, linked_at, ownership
FROM purchases WHERE app_user_id = $1
"""
# The last suspension of the customer, with who did it and why (the audit log).
LAST_SUSPENSION = """
SELECT actor, created_at, details->>'reason' AS reason FROM audit_log
WHERE app_user_id = $1 AND action = 'suspend' ORDER BY id DESC LIMIT 1
"""
# The entries naming one of the customer's purchases, or applied to one: two index lookups
# per purchase (an OR of the two in one join condition reads the whole journal).
TIMELINE_NOTIFICATIONS = (
    """
SELECT n.id, n.store, n.notification_type, n.subtype, n.signed_at, n.received_at, n.result,
       n.reason, n.purchase_id
FROM store_notifications n
WHERE n.id IN ("""
    + ENTRIES_OF
    + """)
ORDER BY n.id DESC
LIMIT $2
"""
)
TIMELINE_EVENTS = """
SELECT sequence, type, created_at, entitlements FROM customer_events
WHERE app_user_id = $1 ORDER BY id DESC LIMIT $2
"""
TIMELINE_OFFERS = """
SELECT offer, product_id, format, nonce, eligible, created_at FROM offer_signatures
WHERE app_user_id = $1 ORDER BY id DESC LIMIT $2
"""
TIMELINE_REFUND_REQUESTS = """
SELECT id, product_id, reason, status, requested_at, deadline FROM refund_requests
WHERE app_user_id = $1 ORDER BY requested_at DESC LIMIT $2
"""
TIMELINE_AUDIT = """
SELECT actor, action, created_at, details FROM audit_log
WHERE app_user_id = $1 ORDER BY id DESC LIMIT $2
"""
# The journal: rejected first, then ignored, then processed; newest first within each.
_JOURNAL_WHERE = """
FROM store_notifications
WHERE ($1::text IS NULL OR store = $1)
  AND ($2::text IS NULL OR notification_type = $2)
  AND ($3::text IS NULL OR result = $3)
  AND ($6::text IS NULL OR app = $6)
"""
# How many entries the journal page counts at most: past it the page says "more than", so a
# view costs the same at any size of the journal (and OFFSET stays below it).
COUNT_LIMIT = 10_000
# The count's own parameters: the page's LIMIT ($4) and OFFSET ($5) are not in it; $5 is
# the count's limit (COUNT_LIMIT + 1: more than COUNT_LIMIT shows as such).
JOURNAL_COUNT = (
    "SELECT count(*)\n  FROM (SELECT 1"  # noqa: S608 - constants only: no input reaches them
    + _JOURNAL_WHERE.replace("$6", "$4")
    + "LIMIT $5) AS counted"
)
JOURNAL_PAGE = (
    """
SELECT id, store, message_id, notification_type, subtype, signed_at, received_at, result,
       reason, purchase_id, payload_pruned_at, app"""
    + _JOURNAL_WHERE
    + """
ORDER BY CASE result WHEN 'rejected' THEN 0 WHEN 'ignored' THEN 1 ELSE 2 END, id DESC
LIMIT $4 OFFSET $5
"""
)
# The distinct values of a journal column in order (at most 200), one index descent each
# (store_notifications_app, store_notifications_type) rather than a pass over the journal.
JOURNAL_APPS = """
WITH RECURSIVE found AS (
    (SELECT app FROM store_notifications WHERE app IS NOT NULL ORDER BY app LIMIT 1)
    UNION ALL
    SELECT (SELECT n.app FROM store_notifications n WHERE n.app > found.app
            ORDER BY n.app LIMIT 1)
    FROM found WHERE found.app IS NOT NULL
)
SELECT app FROM found WHERE app IS NOT NULL LIMIT 200
"""
JOURNAL_TYPES = """
WITH RECURSIVE found AS (
    (SELECT notification_type FROM store_notifications WHERE notification_type IS NOT NULL
     ORDER BY notification_type LIMIT 1)
    UNION ALL
    SELECT (SELECT n.notification_type FROM store_notifications n
            WHERE n.notification_type > found.notification_type
            ORDER BY n.notification_type LIMIT 1)
    FROM found WHERE found.notification_type IS NOT NULL
)
SELECT notification_type FROM found WHERE notification_type IS NOT NULL LIMIT 200
"""
# With the customer whose purchase it names (for the audit row of a raw payload shown).
JOURNAL_ENTRY = """
SELECT n.id, n.store, n.message_id, n.notification_type, n.subtype, n.signed_at,
       n.received_at, n.result, n.reason, n.purchase_id, n.purchase_ids, n.payload, n.reads,
       n.payload_pruned_at, n.app,
       (SELECT p.app_user_id FROM purchases p
        WHERE p.store = n.store AND p.purchase_id = n.purchase_id) AS owner
FROM store_notifications n WHERE n.id = $1
"""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in console browser: the API key's name and binding (a digest naming the key
    itself, api.auth; None for sessions from before migration 0008), its CSRF token and its
    expiry."""

    key_name: str
    key_binding: bytes | None
    csrf_token: str
    expires_at: datetime


async def insert_session(
    conn: asyncpg.Connection,
    *,
    token_sha256: bytes,
    key_name: str,
    key_binding: bytes,
    csrf_token: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    """Store a new console session (by its token's SHA-256), dropping expired ones first."""
    await conn.execute(DELETE_EXPIRED_SESSIONS, created_at)
    await conn.execute(
        INSERT_SESSION, token_sha256, key_name, key_binding, csrf_token, created_at, expires_at
    )


async def session(conn: asyncpg.Connection, token_sha256: bytes, now: datetime) -> Session | None:
    """The session of this token, unless it expired or was signed out."""
    row = await conn.fetchrow(SELECT_SESSION, token_sha256, now)
    if row is None:
        return None
    binding = bytes(row["key_binding"]) if row["key_binding"] is not None else None
    return Session(row["key_name"], binding, row["csrf_token"], row["expires_at"])


async def delete_session(conn: asyncpg.Connection, token_sha256: bytes) -> None:
    """End the session of this token (signing out)."""
    await conn.execute(DELETE_SESSION, token_sha256)


async def search(conn: asyncpg.Connection, query: str) -> list[tuple[str, str]]:
    """(app user id, what matched) of every customer `query` names."""
    return [(r["app_user_id"], r["matched"]) for r in await conn.fetch(SEARCH, query)]


async def customer_facts(conn: asyncpg.Connection, app_user_id: str) -> dict[str, Any]:
    """What the customer object does not say: since when, aliases, the last suspension,
    and per purchase whether it was superseded and when its state was last read."""
    row = await conn.fetchrow(CUSTOMER_ROW, app_user_id)
    suspension = await conn.fetchrow(LAST_SUSPENSION, app_user_id)
    extras = {
        (r["store"], r["purchase_id"]): dict(r)
        for r in await conn.fetch(PURCHASE_EXTRAS, app_user_id)
    }
    return {
        "known": row is not None,
        "created_at": row["created_at"] if row else None,
        "suspended_at": row["suspended_at"] if row else None,
        "aliases": [r["alias"] for r in await conn.fetch(ALIASES, app_user_id)],
        "suspension": dict(suspension) if suspension else None,
        "purchases": extras,
    }


async def timeline_rows(
    conn: asyncpg.Connection, app_user_id: str, limit: int
) -> dict[str, list[dict[str, Any]]]:
    """The newest `limit` notifications, change events, audit rows, offer signatures and
    refund requests of the customer."""
    events = []
    for r in await conn.fetch(TIMELINE_EVENTS, app_user_id, limit):
        events.append(dict(r) | {"entitlements": json.loads(r["entitlements"])})
    audit = []
    for r in await conn.fetch(TIMELINE_AUDIT, app_user_id, limit):
        audit.append(dict(r) | {"details": json.loads(r["details"])})
    return {
        "notifications": [
            dict(r) for r in await conn.fetch(TIMELINE_NOTIFICATIONS, app_user_id, limit)
        ],
        "events": events,
        "audit": audit,
        "offers": [dict(r) for r in await conn.fetch(TIMELINE_OFFERS, app_user_id, limit)],
        "refund_requests": [
            dict(r) for r in await conn.fetch(TIMELINE_REFUND_REQUESTS, app_user_id, limit)
        ],
    }


async def journal_page(
    conn: asyncpg.Connection,
    *,
    store: str | None,
    notification_type: str | None,
    result: str | None,
    limit: int,
    offset: int,
    app: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, up to COUNT_LIMIT + 1; one page of them)."""
    args = (store, notification_type, result)
    total = int(await conn.fetchval(JOURNAL_COUNT, *args, app, COUNT_LIMIT + 1))
    rows = await conn.fetch(JOURNAL_PAGE, *args, limit, offset, app)
    return total, [dict(r) for r in rows]


async def journal_apps(conn: asyncpg.Connection) -> list[str]:
    """The apps the journal names (the filter's choices)."""
    return [r["app"] for r in await conn.fetch(JOURNAL_APPS)]


async def journal_types(conn: asyncpg.Connection) -> list[str]:
    """The notification types the journal holds (the filter's choices)."""
    return [r["notification_type"] for r in await conn.fetch(JOURNAL_TYPES)]


async def journal_entry(conn: asyncpg.Connection, entry_id: int) -> dict[str, Any] | None:
    """One journal entry with its payload, store reads (decoded) and the owner of its
    purchase; None when there is no such entry."""
    row = await conn.fetchrow(JOURNAL_ENTRY, entry_id)
    if row is None:
        return None
    entry = dict(row)
    entry["reads"] = json.loads(row["reads"]) if row["reads"] is not None else None
    return entry
