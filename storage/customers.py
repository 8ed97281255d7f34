"""SQL of the operator actions on customers: grants, suspension, aliases, the audit log, the
GDPR export and erasure. Functions take the connection they run on (the operations module
decides the transaction) and return our types or plain JSON-ready values."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.audit import AuditEntry

ALIAS_OWNER = "SELECT app_user_id FROM customer_aliases WHERE alias = $1"
CUSTOMER_EXISTS = "SELECT EXISTS (SELECT 1 FROM customers WHERE app_user_id = $1)"
LOCK_CUSTOMER_ROW = "SELECT app_user_id FROM customers WHERE app_user_id = $1 FOR UPDATE"
INSERT_GRANT = """
INSERT INTO grants (app_user_id, entitlement, starts_at, expires_at) VALUES ($1, $2, $3, $4)
RETURNING id
"""
END_GRANTS = """
UPDATE grants SET ended_at = $3
WHERE app_user_id = $1 AND entitlement = $2 AND ended_at IS NULL
  AND (expires_at IS NULL OR expires_at > $3)
"""
SUSPEND = """
UPDATE customers SET suspended_at = coalesce(suspended_at, $2), updated_at = $2
WHERE app_user_id = $1
RETURNING suspended_at
"""
UNSUSPEND = """
UPDATE customers SET suspended_at = NULL, updated_at = $2 WHERE app_user_id = $1
"""
INSERT_AUDIT = """
INSERT INTO audit_log (created_at, actor, action, app_user_id, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""
# Merging an alias into a customer: everything of the alias moves, then the alias's row goes.
MOVE_PURCHASES = "UPDATE purchases SET app_user_id = $1, linked_at = $3 WHERE app_user_id = $2"
MOVE_GRANTS = "UPDATE grants SET app_user_id = $1 WHERE app_user_id = $2"
MOVE_ALIASES = "UPDATE customer_aliases SET app_user_id = $1 WHERE app_user_id = $2"
# The owners the journal recorded (purchase_owners, for replay) follow the purchases: they
# always name the current customer.
MOVE_RECORDED_OWNERS = "UPDATE purchase_owners SET app_user_id = $1 WHERE app_user_id = $2"
INSERT_ALIAS = """
INSERT INTO customer_aliases (alias, app_user_id, created_at) VALUES ($1, $2, $3)
"""
DELETE_CUSTOMER = "DELETE FROM customers WHERE app_user_id = $1"
# The export.
EXPORT_CUSTOMER = """
SELECT app_user_id, created_at, updated_at, suspended_at, event_sequence
FROM customers WHERE app_user_id = $1
"""
EXPORT_ALIASES = """
SELECT alias, created_at FROM customer_aliases WHERE app_user_id = $1 ORDER BY alias
"""
EXPORT_PURCHASES = """
SELECT store, purchase_id, product_id, kind, status, period_type, will_renew, expires_at,
       grace_period_expires_at, purchased_at, is_sandbox, unsubscribe_detected_at,
       billing_issue_detected_at, revoked_at, ownership, superseded, app, linked_at,
       created_at, updated_at, price_amount, price_currency, state
FROM purchases WHERE app_user_id = $1 ORDER BY id
"""
EXPORT_GRANTS = """
SELECT id, entitlement, starts_at, expires_at, ended_at, created_at
FROM grants WHERE app_user_id = $1 ORDER BY id
"""
EXPORT_EVENTS = """
SELECT event_id, app_user_id, sequence, type, created_at, entitlements
FROM customer_events WHERE app_user_id = ANY($1::text[]) ORDER BY id
"""
EXPORT_AUDIT = """
SELECT created_at, actor, action, app_user_id, request_id, details
FROM audit_log WHERE app_user_id = ANY($1::text[]) ORDER BY id
"""
# Who held which purchase, as each ingest decided it (purchase_owners: replay's record).
EXPORT_OWNERSHIP = """
SELECT store, purchase_id, notification_id, purchase_created_at
FROM purchase_owners WHERE app_user_id = ANY($1::text[]) ORDER BY id
"""
# A journal entry is the customer's when it names one of the customer's purchases, or its
# events were applied to one (an App Store submission's history, a replaced Play token).
# (Two index lookups per purchase: an OR of the two in one join condition reads the whole
# journal; the GIN one in a LATERAL kept whole by OFFSET 0, whose store is checked after it:
# the planner guesses 0.5 % of the journal for a joined look-up and would rather intersect it
# with every entry of the store.) The ids of the customer's ($1) entries; the console's
# timeline reads them too.
ENTRIES_OF = """
    SELECT n2.id FROM purchases p JOIN store_notifications n2
      ON n2.store = p.store AND n2.purchase_id = p.purchase_id
    WHERE p.app_user_id = $1
    UNION ALL
    SELECT n2.id FROM purchases p
    CROSS JOIN LATERAL (
        SELECT e.id, e.store FROM store_notifications e
        WHERE e.purchase_ids @> ARRAY[p.purchase_id] OFFSET 0) AS n2
    WHERE p.app_user_id = $1 AND n2.store = p.store
"""
EXPORT_NOTIFICATIONS = (
    """
SELECT n.store, n.message_id, n.received_at, n.notification_type, n.subtype, n.signed_at,
       n.purchase_id, n.result, n.reason, n.payload, n.reads, n.payload_pruned_at
FROM store_notifications n
WHERE n.id IN ("""
    + ENTRIES_OF
    + """)
ORDER BY n.id
"""
)
# The erasure: a pseudonym keeps what accounting must keep, the person goes.
INSERT_PSEUDONYM = """
INSERT INTO customers (app_user_id, created_at, updated_at, event_sequence, snapshot, erased_at)
SELECT $2, created_at, $3, event_sequence, snapshot, $3 FROM customers WHERE app_user_id = $1
"""
# The store's answers kept with a payload (`reads`) carry the same personal data: both go.
DROP_PAYLOADS = (
    """
UPDATE store_notifications n SET payload = NULL, reads = NULL, payload_pruned_at = $2
WHERE n.id IN ("""
    + ENTRIES_OF
    + """)
  AND (n.payload IS NOT NULL OR n.reads IS NOT NULL)
"""
)
# The entries of the customer's purchases have just lost their payloads: an ERASURE entry per
# purchase keeps the state they had produced (`checkpoint`, no personal data: the JSON that
# `purchases.state` keeps) and records its owner, the pseudonym ($1), so replay can still
# re-derive (or recreate) the purchase from there. Message ids: the pseudonym and the row id.
CHECKPOINT_PURCHASES = """
WITH journaled AS (
    INSERT INTO store_notifications
        (store, message_id, notification_type, purchase_id, result, received_at,
         purchase_ids, checkpoint, app)
    SELECT store, $1 || ':' || id, 'ERASURE', purchase_id, 'processed', $2,
           ARRAY[purchase_id], state, app
    FROM purchases WHERE app_user_id = $1
    RETURNING id, store, purchase_id
)
INSERT INTO purchase_owners (store, purchase_id, app_user_id, notification_id, purchase_created_at)
SELECT j.store, j.purchase_id, $1, j.id, p.created_at
FROM journaled j JOIN purchases p ON p.store = j.store AND p.purchase_id = j.purchase_id
ORDER BY j.id
"""
DELETE_GRANTS = "DELETE FROM grants WHERE app_user_id = $1"
RENAME_EVENTS = "UPDATE customer_events SET app_user_id = $2 WHERE app_user_id = $1"
RENAME_AUDIT = """
UPDATE audit_log SET app_user_id = $2, details = '{}'::jsonb WHERE app_user_id = $1
"""
RENAME_ACTOR = "UPDATE audit_log SET actor = $2 WHERE actor = $1"
RENAME_RECORDED_OWNERS = "UPDATE purchase_owners SET app_user_id = $2 WHERE app_user_id = $1"
DELETE_ALIASES = "DELETE FROM customer_aliases WHERE app_user_id = $1"


LOCK_PURCHASES_OF = """
SELECT id FROM purchases WHERE app_user_id = ANY($1::text[]) ORDER BY store, purchase_id
FOR UPDATE
"""


async def lock_purchases_of(conn: asyncpg.Connection, app_user_ids: list[str]) -> None:
    """Lock the purchase rows of these customers (in the order ingest locks them), so a
    merge or an erasure and a store message about one of them never interleave."""
    await conn.fetch(LOCK_PURCHASES_OF, app_user_ids)


async def alias_owner(conn: asyncpg.Connection, alias: str) -> str | None:
    """The customer `alias` was merged into, or None when it is no alias."""
    owner: str | None = await conn.fetchval(ALIAS_OWNER, alias)
    return owner


async def customer_exists(conn: asyncpg.Connection, app_user_id: str) -> bool:
    """Whether a customer row with this id exists (an alias is no customer row)."""
    return bool(await conn.fetchval(CUSTOMER_EXISTS, app_user_id))


async def lock_customer_row(conn: asyncpg.Connection, app_user_id: str) -> bool:
    """Lock the customer's row for the transaction; False when there is none."""
    return await conn.fetchval(LOCK_CUSTOMER_ROW, app_user_id) is not None


async def audit(conn: asyncpg.Connection, entry: AuditEntry, at: datetime) -> None:
    """Append one row to the audit log."""
    await conn.execute(
        INSERT_AUDIT,
        at,
        entry.actor,
        entry.action,
        entry.app_user_id,
        entry.request_id,
        json.dumps(entry.details or {}, sort_keys=True),
    )


async def add_grant(
    conn: asyncpg.Connection,
    app_user_id: str,
    entitlement: str,
    starts_at: datetime,
    expires_at: datetime | None,
) -> int:
    """Store a grant of `entitlement` from `starts_at` to `expires_at` (None: lifetime); its
    id."""
    grant_id: int = await conn.fetchval(
        INSERT_GRANT, app_user_id, entitlement, starts_at, expires_at
    )
    return grant_id


async def end_grants(
    conn: asyncpg.Connection, app_user_id: str, entitlement: str, at: datetime
) -> int:
    """End the customer's grants of `entitlement` that still run; how many were ended."""
    status = await conn.execute(END_GRANTS, app_user_id, entitlement, at)
    return int(status.split()[-1])


async def suspend(conn: asyncpg.Connection, app_user_id: str, at: datetime) -> None:
    """Suspend the customer from `at` (an earlier suspension keeps its start)."""
    await conn.execute(SUSPEND, app_user_id, at)


async def unsuspend(conn: asyncpg.Connection, app_user_id: str, at: datetime) -> None:
    """Lift the customer's suspension (as of `at`)."""
    await conn.execute(UNSUSPEND, app_user_id, at)


async def move_to(conn: asyncpg.Connection, target: str, alias: str, at: datetime) -> None:
    """Move the alias's purchases (with the owners the journal recorded for them), grants
    and own aliases to `target`."""
    await conn.execute(MOVE_PURCHASES, target, alias, at)
    await conn.execute(MOVE_RECORDED_OWNERS, target, alias)
    await conn.execute(MOVE_GRANTS, target, alias)
    await conn.execute(MOVE_ALIASES, target, alias)


async def retire(conn: asyncpg.Connection, alias: str, target: str, at: datetime) -> None:
    """The alias stops being a customer and reads as `target` from now on."""
    await conn.execute(DELETE_CUSTOMER, alias)
    await conn.execute(INSERT_ALIAS, alias, target, at)


EXPORT_CONSENT = """
SELECT app_user_id, consumption_data, updated_at FROM customer_consents
WHERE app_user_id = ANY($1::text[])
"""
EXPORT_REFUND_REQUESTS = """
SELECT * FROM refund_requests WHERE app_user_id = ANY($1::text[]) ORDER BY requested_at, id
"""
RENAME_REFUND_REQUESTS = "UPDATE refund_requests SET app_user_id = $2 WHERE app_user_id = $1"
RENAME_STORE_ACTIONS = "UPDATE store_actions SET app_user_id = $2 WHERE app_user_id = $1"
RENAME_OFFER_SIGNATURES = "UPDATE offer_signatures SET app_user_id = $2 WHERE app_user_id = $1"
EXPORT_OFFER_SIGNATURES = """
SELECT offer, product_id, format, nonce, transaction_id, eligible, created_at
FROM offer_signatures WHERE app_user_id = ANY($1::text[]) ORDER BY created_at, id
"""
EXPORT_STORE_ACTIONS = """
SELECT * FROM store_actions WHERE app_user_id = ANY($1::text[]) ORDER BY created_at, id
"""
DELETE_CONSENT = "DELETE FROM customer_consents WHERE app_user_id = $1"


async def export(conn: asyncpg.Connection, app_user_id: str) -> dict[str, Any]:
    """Everything stored about a customer (and its aliases), JSON-ready."""
    customer = await conn.fetchrow(EXPORT_CUSTOMER, app_user_id)
    aliases = [_plain(r) for r in await conn.fetch(EXPORT_ALIASES, app_user_id)]
    ids = [app_user_id, *(a["alias"] for a in aliases)]
    purchases = []
    for row in await conn.fetch(EXPORT_PURCHASES, app_user_id):
        item = _plain(row)
        item["state"] = json.loads(row["state"]) if isinstance(row["state"], str) else None
        purchases.append(item)
    events = []
    for row in await conn.fetch(EXPORT_EVENTS, ids):
        item = _plain(row)
        item["entitlements"] = json.loads(row["entitlements"])
        events.append(item)
    audit_rows = []
    for row in await conn.fetch(EXPORT_AUDIT, ids):
        item = _plain(row)
        item["details"] = json.loads(row["details"])
        audit_rows.append(item)
    return {
        "customer": _plain(customer) if customer is not None else None,
        "aliases": aliases,
        "purchases": purchases,
        "grants": [_plain(r) for r in await conn.fetch(EXPORT_GRANTS, app_user_id)],
        "events": events,
        "audit": audit_rows,
        "ownership": [_plain(r) for r in await conn.fetch(EXPORT_OWNERSHIP, ids)],
        "consent": [_plain(r) for r in await conn.fetch(EXPORT_CONSENT, ids)],
        "refund_requests": [
            _plain(r) | {"id": str(r["id"]), "sent_body": _loaded(r["sent_body"])}
            for r in await conn.fetch(EXPORT_REFUND_REQUESTS, ids)
        ],
        "store_actions": [
            _plain(r)
            | {
                "id": str(r["id"]),
                "request": _loaded(r["request"]),
                "answer": _loaded(r["answer"]),
            }
            for r in await conn.fetch(EXPORT_STORE_ACTIONS, ids)
        ],
        "offer_signatures": [_plain(r) for r in await conn.fetch(EXPORT_OFFER_SIGNATURES, ids)],
        "notifications": [
            _plain(r) | {"reads": json.loads(r["reads"]) if r["reads"] is not None else None}
            for r in await conn.fetch(EXPORT_NOTIFICATIONS, app_user_id)
        ],
    }


async def erase(conn: asyncpg.Connection, customer: str, pseudonym: str, at: datetime) -> None:
    """Replace the customer by `pseudonym` where accounting needs it (its purchases, which
    keep their state and store ids) and delete the rest: grants, aliases, the raw payloads
    of its purchases, the customer row. The journal keeps each purchase's state as of now
    (an ERASURE entry, owned by the pseudonym), for replay; `scrub` renames the owners it
    recorded before."""
    await conn.execute(INSERT_PSEUDONYM, customer, pseudonym, at)
    await conn.execute(MOVE_PURCHASES, pseudonym, customer, at)
    await conn.execute(DROP_PAYLOADS, pseudonym, at)
    await conn.execute(CHECKPOINT_PURCHASES, pseudonym, at)
    await conn.execute(DELETE_GRANTS, customer)
    await conn.execute(DELETE_ALIASES, customer)
    await conn.execute(DELETE_CUSTOMER, customer)


async def scrub(conn: asyncpg.Connection, pseudonyms: dict[str, str]) -> None:
    """Each erased id becomes its pseudonym in the change feed, the audit log (targets, and
    actors who were that user), the owners ingest recorded for replay (purchase_owners) and
    its refund requests; the audit details of its rows and its consent go."""
    for erased, pseudonym in sorted(pseudonyms.items()):
        await conn.execute(RENAME_EVENTS, erased, pseudonym)
        await conn.execute(RENAME_RECORDED_OWNERS, erased, pseudonym)
        await conn.execute(RENAME_AUDIT, erased, pseudonym)
        await conn.execute(RENAME_ACTOR, f"user:{erased}", f"user:{pseudonym}")
        await conn.execute(RENAME_REFUND_REQUESTS, erased, pseudonym)
        await conn.execute(RENAME_STORE_ACTIONS, erased, pseudonym)
        await conn.execute(RENAME_OFFER_SIGNATURES, erased, pseudonym)
        await conn.execute(DELETE_CONSENT, erased)


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    """A record as JSON-ready values (times as RFC 3339, UUIDs as text)."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif key == "event_id":
            out[key] = str(value)
        else:
            out[key] = value
    return out
