"""All SQL of the entitlements domain, as named constants; functions return our types.

Every function takes the connection it runs on, so the service decides the transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from entitlements import feed_rollup
from entitlements.access import CustomerRecord, Grant
from entitlements.codec import from_jsonable, to_jsonable
from entitlements.journal import JournalEntry
from entitlements.model import (
    Ownership,
    PeriodType,
    Price,
    PurchaseKind,
    PurchaseState,
    PurchaseView,
    Status,
    Store,
)
from storage import console_metrics

# pg_advisory_xact_lock key taken right before change-feed rows are inserted, so that
# the feed's id order is the commit order (see migrations/0001_initial.sql).
FEED_LOCK_KEY = 0x7265636569707465

RESOLVE_ALIASES = """
SELECT alias, app_user_id FROM customer_aliases WHERE alias = ANY($1::text[])
"""
ALIASES_OF = """
SELECT alias FROM customer_aliases WHERE app_user_id = ANY($1::text[]) ORDER BY alias
"""
ERASED_AMONG = """
SELECT app_user_id FROM customers WHERE app_user_id = ANY($1::text[]) AND erased_at IS NOT NULL
"""


# The whole record in one round trip: the customer row with its purchases' view columns and
# its grants as arrays of anonymous rows (asyncpg decodes them to tuples of native values).
# An alias reads as the customer it was merged into. record_changes runs it too, as a
# statement of its own AFTER locking the customer: in READ COMMITTED a statement that waited
# for a lock still reads with its own snapshot, so a locking read would miss what the
# transaction it waited for committed.
def _joined(*parts: str) -> str:
    """One statement from this module's SQL fragments (constants: no input reaches them)."""
    return "".join(parts)


# The purchases and grants of customer row `c`, as arrays of anonymous rows.
_RECORD_ARRAYS = """
    ARRAY(SELECT ROW(store, purchase_id, product_id, kind, status, period_type, will_renew,
                     expires_at, grace_period_expires_at, purchased_at, is_sandbox,
                     unsubscribe_detected_at, billing_issue_detected_at, revoked_at, ownership,
                     superseded, app, price_amount, price_currency)
          FROM purchases p WHERE p.app_user_id = c.app_user_id AND p.product_id <> ''
          ORDER BY p.purchased_at NULLS FIRST, p.id) AS purchases,
    ARRAY(SELECT ROW(id, entitlement, starts_at, expires_at, ended_at)
          FROM grants g WHERE g.app_user_id = c.app_user_id ORDER BY g.id) AS grants"""
_ALIASES_ARRAY = """,
    ARRAY(SELECT alias FROM customer_aliases WHERE app_user_id = $1 ORDER BY alias) AS aliases"""
_RECORD_COLUMNS = "\nSELECT c.app_user_id, c.suspended_at," + _RECORD_ARRAYS
_RECORD_FROM = """
FROM customers c
WHERE c.app_user_id = coalesce((SELECT app_user_id FROM customer_aliases WHERE alias = $1), $1)
"""
SELECT_CUSTOMER_RECORD = _RECORD_COLUMNS + _RECORD_FROM
# SELECT_CUSTOMER_RECORD with the customer's aliases, for record_changes: read after the
# customer lock, which a merge takes too, so no alias of it can appear before commit.
SELECT_CUSTOMER_RECORD_ALIASES = _RECORD_COLUMNS + _ALIASES_ARRAY + _RECORD_FROM
INSERT_NOTIFICATION = """
INSERT INTO store_notifications
    (store, message_id, notification_type, subtype, signed_at, purchase_id, result, reason,
     payload, received_at, reads, purchase_ids, app)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::text[], $13)
ON CONFLICT (store, message_id) DO NOTHING
RETURNING id
"""
# Creates the row if needed and locks it in one round trip: ON CONFLICT DO UPDATE takes the
# same row lock as SELECT … FOR UPDATE and RETURNING gives the stored state.
LOCK_PURCHASE = """
INSERT INTO purchases
    (store, purchase_id, product_id, kind, status, period_type, will_renew, is_sandbox,
     state, state_updated_at)
VALUES ($1, $2, '', 'subscription', 'pending', 'normal', false, false, 'null'::jsonb, now())
ON CONFLICT (store, purchase_id) DO UPDATE SET store = EXCLUDED.store
RETURNING state, app_user_id
"""
# The common single-purchase ingest in one round trip: journal the notification and, only if
# its message id is new, create-and-lock the purchase as LOCK_PURCHASE does (no row for a
# duplicate: the purchase is neither created nor locked).
INSERT_NOTIFICATION_LOCK_PURCHASE = """
WITH journaled AS (
    INSERT INTO store_notifications
        (store, message_id, notification_type, subtype, signed_at, purchase_id, result, reason,
         payload, received_at, reads, purchase_ids, app)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::text[], $13)
    ON CONFLICT (store, message_id) DO NOTHING
    RETURNING id
)
INSERT INTO purchases
    (store, purchase_id, product_id, kind, status, period_type, will_renew, is_sandbox,
     state, state_updated_at)
SELECT $14, $15, '', 'subscription', 'pending', 'normal', false, false, 'null'::jsonb, now()
FROM journaled
ON CONFLICT (store, purchase_id) DO UPDATE SET store = EXCLUDED.store
RETURNING state, app_user_id, (SELECT id FROM journaled) AS entry_id
"""
UPDATE_PURCHASE = """
UPDATE purchases SET
    product_id = $3, kind = $4, status = $5, period_type = $6, will_renew = $7,
    expires_at = $8, grace_period_expires_at = $9, purchased_at = $10, is_sandbox = $11,
    unsubscribe_detected_at = $12, billing_issue_detected_at = $13, revoked_at = $14,
    ownership = $15, superseded = $16, state = $17::jsonb, state_updated_at = $18,
    app_user_id = $19, app = $17::jsonb ->> 'app', price_amount = $20, price_currency = $21,
    linked_at = CASE WHEN app_user_id IS DISTINCT FROM $19 THEN now() ELSE linked_at END,
    updated_at = now()
WHERE store = $1 AND purchase_id = $2
"""
NOTIFICATION_SEEN = """
SELECT EXISTS (SELECT 1 FROM store_notifications WHERE store = $1 AND message_id = $2)
"""
ENSURE_CUSTOMER = """
INSERT INTO customers (app_user_id) VALUES ($1) ON CONFLICT (app_user_id) DO NOTHING
"""
# ENSURE_CUSTOMER ($22) then UPDATE_PURCHASE in one round trip, for an ingest whose one new
# customer owns its one write. The purchase's foreign key is checked at the end of the
# statement, when the customer row the CTE inserted exists. `created`: this statement
# inserted the customer row.
ENSURE_CUSTOMER_SAVE_PURCHASE = _joined(
    """
WITH ensured AS (
    INSERT INTO customers (app_user_id) VALUES ($22) ON CONFLICT (app_user_id) DO NOTHING
    RETURNING app_user_id
)""",
    UPDATE_PURCHASE,
    "RETURNING EXISTS (SELECT 1 FROM ensured) AS created\n",
)
# Ingest's writes also record, in the same statement (no round trip of their own), the owner
# they decided for their journal entry into purchase_owners (migrations/0009), with the row's
# first-stored time: how replay recreates a purchase whose row is gone. The UPDATE's RETURNING
# feeds the INSERT (data-modifying CTEs see each other's RETURNING, not each other's writes).
_SAVED = _joined(
    "\nsaved AS (", UPDATE_PURCHASE, "RETURNING store, purchase_id, app_user_id, created_at\n)"
)
_RECORDED = """,
recorded AS (
    INSERT INTO purchase_owners
        (store, purchase_id, app_user_id, notification_id, purchase_created_at)
    SELECT store, purchase_id, app_user_id, {entry}::bigint, created_at FROM saved
)
"""
# UPDATE_PURCHASE, recording for journal entry $22.
SAVE_PURCHASE_RECORD_OWNER = _joined("WITH", _SAVED, _RECORDED.format(entry="$22"), "SELECT 1\n")
# ENSURE_CUSTOMER_SAVE_PURCHASE, recording for journal entry $23.
ENSURE_CUSTOMER_SAVE_PURCHASE_RECORD_OWNER = _joined(
    """
WITH ensured AS (
    INSERT INTO customers (app_user_id) VALUES ($22) ON CONFLICT (app_user_id) DO NOTHING
    RETURNING app_user_id
),""",
    _SAVED,
    _RECORDED.format(entry="$23"),
    "SELECT EXISTS (SELECT 1 FROM ensured) AS created\n",
)
# NO KEY UPDATE, not UPDATE: the purchase rows written before hold a key-share lock on this
# row (their foreign key), which FOR UPDATE would wait on: two ingests for one customer
# would deadlock. NO KEY UPDATE conflicts with itself, so they still take turns here.
LOCK_CUSTOMER = """
SELECT event_sequence, snapshot, suspended_at FROM customers WHERE app_user_id = $1
FOR NO KEY UPDATE
"""
# LOCK_CUSTOMER and SELECT_CUSTOMER_RECORD_ALIASES in one statement, only for a customer row
# the transaction inserted itself: nobody else can have waited on it, written rows that
# reference it or merged into it before our commit, so this statement's snapshot reads the
# same as a separate read after the lock. `is_alias` (an alias of the same id, created
# concurrently): the caller reads the record separately, as SELECT_CUSTOMER_RECORD would.
LOCK_CREATED_CUSTOMER_RECORD = _joined(
    "\nSELECT c.event_sequence, c.snapshot, c.app_user_id, c.suspended_at,",
    _RECORD_ARRAYS,
    _ALIASES_ARRAY,
    """,
    EXISTS (SELECT 1 FROM customer_aliases WHERE alias = $1) AS is_alias
FROM customers c WHERE c.app_user_id = $1
FOR NO KEY UPDATE OF c
""",
)
# The feed lock is taken by the statement that appends the event, in the same round trip:
# the UPDATE's condition needs the (materialized, uncorrelated) lock CTE before any row
# qualifies, so the event's id is drawn only once the lock is held. Re-taking it for the
# next event of the transaction is a no-op (advisory locks stack within a transaction).
# The feed lock, then the customer's next sequence number and snapshot: the CTEs both
# statements below start with.
_LOCK_AND_ADVANCE = """
WITH feed_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock($6::bigint)),
advanced AS (
    UPDATE customers
    SET event_sequence = event_sequence + 1, snapshot = $4::jsonb, updated_at = now()
    WHERE app_user_id = $2 AND EXISTS (SELECT 1 FROM feed_lock)
    RETURNING event_sequence
)"""
_APPENDED = """
INSERT INTO customer_events (event_id, app_user_id, sequence, type, entitlements, created_at)
SELECT $1, $2, event_sequence, $3, $4::jsonb, $5 FROM advanced
RETURNING sequence"""
APPEND_EVENT = _joined(_LOCK_AND_ADVANCE, _APPENDED, "\n")
# The transaction's last APPEND_EVENT, adding its feed_daily rows ($7-$14, in key order) in
# the same round trip: the rows are written only after the feed lock is taken (the CTE reads
# it).
APPEND_LAST_EVENT = _joined(
    _LOCK_AND_ADVANCE,
    ",\nappended AS (",
    _APPENDED,
    "\n),\ndays AS (",
    console_metrics.ADD_FEED_DAYS_LOCKED,
    """)
SELECT sequence FROM appended
""",
)


# Purchases stored before apps were recorded (migration 0010), given the store's one app.
FILL_APPS = """
UPDATE purchases SET app = $2, state = jsonb_set(state, '{app}', to_jsonb($2::text))
WHERE store = $1 AND app IS NULL AND jsonb_typeof(state) = 'object'
"""
FILL_JOURNAL_APPS = """UPDATE store_notifications SET app = $2 WHERE store = $1 AND app IS NULL"""
COUNT_WITHOUT_APP = """
SELECT count(*) FROM purchases WHERE store = $1 AND app IS NULL AND jsonb_typeof(state) = 'object'
"""


@dataclass(frozen=True, slots=True)
class LockedPurchase:
    """A purchase row under its lock: its stored state (None for a row just created) and
    owner."""

    state: PurchaseState | None
    app_user_id: str | None


async def fetch_customer(conn: asyncpg.Connection, app_user_id: str) -> CustomerRecord:
    """The stored record of a customer (an alias reads as the customer it was merged into);
    an unknown id reads as an empty customer."""
    row = await conn.fetchrow(SELECT_CUSTOMER_RECORD, app_user_id)
    if row is None:
        return CustomerRecord(app_user_id=app_user_id, suspended=False, purchases=(), grants=())
    return _record_of(row)


def _record_of(row: asyncpg.Record) -> CustomerRecord:
    return CustomerRecord(
        app_user_id=row["app_user_id"],
        suspended=row["suspended_at"] is not None,
        purchases=tuple(_view_of(p) for p in row["purchases"]),
        grants=tuple(Grant(*g) for g in row["grants"]),
    )


def _view_of(p: tuple[Any, ...]) -> PurchaseView:
    """A purchase view from the positional row of SELECT_CUSTOMER_RECORD."""
    return PurchaseView(
        Store(p[0]),
        p[1],
        p[2],
        PurchaseKind(p[3]),
        Status(p[4]),
        PeriodType(p[5]),
        p[6],
        p[7],
        p[8],
        p[9],
        p[10],
        p[11],
        p[12],
        p[13],
        Ownership(p[14]),
        p[15],
        p[16],
        None if p[17] is None else Price(p[17], p[18]),
    )


async def resolve_aliases(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, str]:
    """alias → the customer it was merged into, for those of `ids` that are aliases."""
    rows = await conn.fetch(RESOLVE_ALIASES, sorted(set(ids)))
    return {r["alias"]: r["app_user_id"] for r in rows}


async def aliases_of(conn: asyncpg.Connection, app_user_ids: Iterable[str]) -> list[str]:
    """Every alias of these customers (each may have cached a read of one of them)."""
    return [r["alias"] for r in await conn.fetch(ALIASES_OF, sorted(set(app_user_ids)))]


async def erased_among(conn: asyncpg.Connection, app_user_ids: Iterable[str]) -> set[str]:
    """Those of `app_user_ids` that are pseudonyms left by an erasure."""
    ids = sorted(set(app_user_ids))
    if not ids:
        return set()
    return {r["app_user_id"] for r in await conn.fetch(ERASED_AMONG, ids)}


async def notification_seen(conn: asyncpg.Connection, store: Store, message_id: str) -> bool:
    """True when the journal already holds this store message id."""
    return bool(await conn.fetchval(NOTIFICATION_SEEN, store.value, message_id))


async def insert_notification(
    conn: asyncpg.Connection,
    row: JournalEntry,
    received_at: datetime,
    purchase_ids: Sequence[str] = (),
) -> int | None:
    """Journal a notification with the local time it was received (this host's clock: kept
    in the journal, never shown as a store fact) and the purchases its events are applied
    to; the new entry's id, or None when this store message id was seen before."""
    new_id: int | None = await conn.fetchval(
        INSERT_NOTIFICATION, *_notification_args(row, received_at, purchase_ids)
    )
    return new_id


def _notification_args(
    row: JournalEntry, received_at: datetime, purchase_ids: Sequence[str]
) -> tuple[Any, ...]:
    return (
        row.store.value,
        row.message_id,
        row.notification_type,
        row.subtype,
        row.signed_at,
        row.purchase_id,
        row.result,
        row.reason,
        row.payload,
        received_at,
        json.dumps(row.reads) if row.reads is not None else None,
        list(purchase_ids),
        row.app,
    )


async def lock_purchase(conn: asyncpg.Connection, store: Store, purchase_id: str) -> LockedPurchase:
    """Lock (creating if needed) the purchase row for the rest of the transaction."""
    row = await conn.fetchrow(LOCK_PURCHASE, store.value, purchase_id)
    assert row is not None
    return _locked_of(row)


async def insert_notification_lock_purchase(
    conn: asyncpg.Connection,
    row: JournalEntry,
    received_at: datetime,
    purchase_ids: Sequence[str],
    purchase: tuple[Store, str],
) -> tuple[int, LockedPurchase] | None:
    """`insert_notification` then `lock_purchase` in one round trip: the new entry's id and
    the locked purchase; None (and no purchase created or locked) when this store message id
    was seen before."""
    locked = await conn.fetchrow(
        INSERT_NOTIFICATION_LOCK_PURCHASE,
        *_notification_args(row, received_at, purchase_ids),
        purchase[0].value,
        purchase[1],
    )
    return (locked["entry_id"], _locked_of(locked)) if locked is not None else None


def _locked_of(row: asyncpg.Record) -> LockedPurchase:
    raw = json.loads(row["state"]) if isinstance(row["state"], str) else row["state"]
    state = from_jsonable(PurchaseState, raw) if raw else None
    return LockedPurchase(state=state, app_user_id=row["app_user_id"])


async def save_purchase(
    conn: asyncpg.Connection,
    state: PurchaseState,
    view: PurchaseView,
    app_user_id: str | None,
    *,
    entry: int | None = None,
) -> None:
    """Write a purchase's state and derived view (the row must be locked); with `entry`,
    record its owner as journal entry `entry` decided it (purchase_owners), in the same
    statement."""
    args = _purchase_args(state, view, app_user_id)
    if entry is None:
        await conn.execute(UPDATE_PURCHASE, *args)
    else:
        await conn.execute(SAVE_PURCHASE_RECORD_OWNER, *args, entry)


async def ensure_customer_save_purchase(
    conn: asyncpg.Connection,
    customer: str,
    state: PurchaseState,
    view: PurchaseView,
    app_user_id: str | None,
    *,
    entry: int | None = None,
) -> bool:
    """`ensure_customer(customer)` then `save_purchase` in one round trip; True when the
    customer row was created by this call."""
    args = _purchase_args(state, view, app_user_id)
    if entry is None:
        created = await conn.fetchval(ENSURE_CUSTOMER_SAVE_PURCHASE, *args, customer)
    else:
        created = await conn.fetchval(
            ENSURE_CUSTOMER_SAVE_PURCHASE_RECORD_OWNER, *args, customer, entry
        )
    return bool(created)


def _purchase_args(
    state: PurchaseState, view: PurchaseView, app_user_id: str | None
) -> tuple[Any, ...]:
    return (
        state.store.value,
        state.purchase_id,
        view.product_id,
        view.kind.value,
        view.status.value,
        view.period_type.value,
        view.will_renew,
        view.expires_at,
        view.grace_period_expires_at,
        view.purchased_at,
        view.is_sandbox,
        view.unsubscribe_detected_at,
        view.billing_issue_detected_at,
        view.revoked_at,
        view.ownership.value,
        view.superseded,
        json.dumps(to_jsonable(state)),
        state.updated_at,
        app_user_id,
        view.price.amount if view.price is not None else None,
        view.price.currency if view.price is not None else None,
    )


async def fill_apps(conn: asyncpg.Connection, store: Store, app: str) -> int:
    """Name `app` as the app of every purchase of `store` stored without one; how many."""
    done = await conn.execute(FILL_APPS, store.value, app)
    await conn.execute(FILL_JOURNAL_APPS, store.value, app)
    return int(done.split()[-1])


async def count_without_app(conn: asyncpg.Connection, store: Store) -> int:
    """How many purchases of `store` name no app."""
    return int(await conn.fetchval(COUNT_WITHOUT_APP, store.value))


async def ensure_customer(conn: asyncpg.Connection, app_user_id: str) -> None:
    """Create the customer row unless it exists."""
    await conn.execute(ENSURE_CUSTOMER, app_user_id)


async def record_changes(
    conn: asyncpg.Connection,
    changes: list[tuple[str, str]],
    snapshot_of: Callable[[CustomerRecord], dict[str, Any]],
    *,
    at: datetime,
    always: Collection[str] = (),
    with_aliases: bool = False,
    created: Collection[str] = (),
) -> tuple[dict[str, int], list[str]]:
    """Append change-feed events for customers whose entitlement snapshot changed, and for
    those in `always` (an operator action, a transfer: an event even if nothing shows).

    `changes` holds (app_user_id, event type); `snapshot_of` computes the entitlements of a
    locked customer's record. Call after all other writes of the transaction: customers are
    locked in id order, then the feed lock is taken and held until commit, so lock order is
    always purchases → customers → feed (no deadlocks) and feed ids are in commit order.

    With `with_aliases`, also every alias of the changed customers (as `aliases_of`, read
    with each customer's record under its lock: no extra round trip); `created`: customer
    rows this transaction inserted (locked and read in one statement). Returns the new
    sequence per customer that got an event, and those aliases.
    """
    pending: list[tuple[str, str, str]] = []
    days: list[feed_rollup.FeedDay] = []
    aliases: set[str] = set()
    for app_user_id, event_type in sorted(changes):
        if with_aliases and app_user_id in created:
            row = await conn.fetchrow(LOCK_CREATED_CUSTOMER_RECORD, app_user_id)
            assert row is not None, "ensure_customer first"
            read = row
            if row["is_alias"]:
                read = await conn.fetchrow(SELECT_CUSTOMER_RECORD_ALIASES, app_user_id)
            aliases.update(read["aliases"])
        elif with_aliases:
            row = await conn.fetchrow(LOCK_CUSTOMER, app_user_id)
            assert row is not None, "ensure_customer first"
            read = await conn.fetchrow(SELECT_CUSTOMER_RECORD_ALIASES, app_user_id)
            aliases.update(read["aliases"])
        else:
            row = await conn.fetchrow(LOCK_CUSTOMER, app_user_id)
            assert row is not None, "ensure_customer first"
            read = await conn.fetchrow(SELECT_CUSTOMER_RECORD, app_user_id)
        record = _record_of(read)
        entitlements = snapshot_of(record)
        old = row["snapshot"]
        if app_user_id not in always and old is not None and json.loads(old) == entitlements:
            continue
        pending.append((app_user_id, event_type, json.dumps(entitlements, sort_keys=True)))
        days += feed_rollup.feed_changes(None if old is None else json.loads(old), entitlements, at)
    sequences: dict[str, int] = {}
    # The business page's rollup (feed_daily) goes with the last event, in its statement: the
    # feed lock is held from the first append to commit, so every writer adds its rows one
    # after another (no deadlock between writers whatever their keys; the rows go in key
    # order all the same), and a rollup row counts exactly the events committed with it.
    rollup = console_metrics.feed_day_arrays(days)
    for n, (app_user_id, event_type, snapshot) in enumerate(pending, start=1):
        args = (uuid.uuid4(), app_user_id, event_type, snapshot, at, FEED_LOCK_KEY)
        if n == len(pending) and rollup is not None:
            sequences[app_user_id] = await conn.fetchval(APPEND_LAST_EVENT, *args, *rollup)
        else:
            sequences[app_user_id] = await conn.fetchval(APPEND_EVENT, *args)
    return sequences, sorted(aliases)


def purchase_view(r: asyncpg.Record) -> PurchaseView:
    """The view columns of a purchases row."""
    return PurchaseView(
        store=Store(r["store"]),
        purchase_id=r["purchase_id"],
        product_id=r["product_id"],
        kind=PurchaseKind(r["kind"]),
        status=Status(r["status"]),
        period_type=PeriodType(r["period_type"]),
        will_renew=r["will_renew"],
        expires_at=r["expires_at"],
        grace_period_expires_at=r["grace_period_expires_at"],
        purchased_at=r["purchased_at"],
        is_sandbox=r["is_sandbox"],
        unsubscribe_detected_at=r["unsubscribe_detected_at"],
        billing_issue_detected_at=r["billing_issue_detected_at"],
        revoked_at=r["revoked_at"],
        ownership=Ownership(r["ownership"]),
        superseded=r["superseded"],
        app=r["app"],
        price=None if r["price_amount"] is None else Price(r["price_amount"], r["price_currency"]),
    )
