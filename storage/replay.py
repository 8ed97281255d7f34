"""SQL of `receiptd replay`: the purchases to check (stored, or named by the journal with no
row), the journal entries that touched them, the owners ingest recorded, and the checks and
writes a fix makes under the purchase's row lock. Functions take their connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.model import Store
from entitlements.replay import JournalEntry, MissingPurchase, Recorded, StoredPurchase
from storage.purchases import purchase_view

# The version of migrations/0005: from its application on, every entry keeps its store
# reads and every submission is journaled.
JOURNAL_COMPLETE_VERSION = 5


def _joined(*parts: str) -> str:
    """One statement from this module's SQL fragments (constants: no input reaches them)."""
    return "".join(parts)


JOURNAL_COMPLETE_SINCE = "SELECT applied_at FROM schema_migrations WHERE version = $1"
CUSTOMER_OF = """
SELECT coalesce((SELECT app_user_id FROM customer_aliases WHERE alias = $1), $1)
"""
# The latest owner ingest recorded for purchase `k` (migrations/0009), an alias read as its
# customer (merges move the records, but a merge racing an ingest can leave one behind).
_RECORDED = """
LEFT JOIN LATERAL (
    SELECT coalesce((SELECT a.app_user_id FROM customer_aliases a WHERE a.alias = o.app_user_id),
                    o.app_user_id) AS recorded_owner,
           o.purchase_created_at AS recorded_created_at, o.notification_id AS recorded_entry,
           true AS recorded
    FROM purchase_owners o WHERE o.store = k.store AND o.purchase_id = k.purchase_id
    ORDER BY o.id DESC LIMIT 1
) r ON true
"""
# The selection of stored purchases: every one, or a customer's ($1: stored or recorded as
# its owner), or those an entry received at or after $2 touched.
_SELECTION = """WHERE ($1::text IS NULL OR k.app_user_id = $1 OR r.recorded_owner = $1)
  AND ($2::timestamptz IS NULL OR EXISTS (
        SELECT 1 FROM store_notifications n
        WHERE n.store = k.store AND n.purchase_ids @> ARRAY[k.purchase_id]
          AND n.received_at >= $2))
"""
# The ids a customer's purchases may be recorded under: its own and its aliases'.
_CUSTOMER_IDS = "array_append(ARRAY(SELECT alias FROM customer_aliases WHERE app_user_id = $1), $1)"
# The rows the selection can hold, read by index when it is filtered (the selection itself
# then decides): with a customer, its stored purchases and those with an owner record under
# one of its ids; with `since` only, those an entry received since names. `{page}` holds a
# page's conditions on the row id.
_CANDIDATES = _joined(
    """
    SELECT * FROM purchases WHERE $1::text IS NOT NULL AND id IN (
        SELECT id FROM purchases WHERE app_user_id = $1
        UNION
        SELECT p.id FROM purchase_owners o
        JOIN purchases p ON p.store = o.store AND p.purchase_id = o.purchase_id
        WHERE o.app_user_id = ANY (""",
    _CUSTOMER_IDS,
    """))
      {page}
    UNION ALL
    SELECT * FROM purchases
    WHERE $1::text IS NULL AND $2::timestamptz IS NOT NULL AND (store, purchase_id) IN (
        SELECT n.store, u.purchase_id
        FROM store_notifications n, unnest(n.purchase_ids) AS u(purchase_id)
        WHERE n.received_at >= $2)
      {page}""",
)
_SELECTED = _joined(
    "\nFROM (SELECT * FROM purchases WHERE $1::text IS NULL AND $2::timestamptz IS NULL\n",
    "      UNION ALL",
    _CANDIDATES.replace("{page}", ""),
    ") AS k",
    _RECORDED,
    _SELECTION,
)
COUNT_SELECTED = _joined("SELECT count(*)", _SELECTED)
# A lost purchase's share of a parallel run (`Part`): a hash of its purchase id, as every
# part's queries compute it ($6 parts, this one $7).
_SHARE_OF_K = "  AND mod(hashtext(k.purchase_id) & 2147483647, $6) = $7\n"
# One page of it: the next $4 rows after row id $3 of this part ($5 parts, this one $6).
# Without a filter the page's rows are chosen before the owner record is joined, so that
# only they are: the planner, misjudging `id % $5 = $6`, else joined every row after $3 and
# sorted them, each page (the pages of a run: quadratic in the purchases).
_PAGE_COLUMNS = """k.id, k.store, k.purchase_id, k.app_user_id, k.created_at, k.state,
       k.state_updated_at, k.product_id, k.kind, k.status, k.period_type, k.will_renew,
       k.expires_at, k.grace_period_expires_at, k.purchased_at, k.is_sandbox,
       k.unsubscribe_detected_at, k.billing_issue_detected_at, k.revoked_at, k.ownership,
       k.superseded, k.app, k.price_amount, k.price_currency, r.*"""
SELECT_PAGE = _joined(
    "\nSELECT ",
    _PAGE_COLUMNS,
    """
FROM ((SELECT * FROM purchases
       WHERE $1::text IS NULL AND $2::timestamptz IS NULL AND id > $3 AND id % $5 = $6
       ORDER BY id LIMIT $4)
      UNION ALL""",
    _CANDIDATES.replace("{page}", "AND id > $3 AND id % $5 = $6"),
    """) AS k""",
    _RECORDED,
    _SELECTION,
    """ORDER BY k.id
LIMIT $4
""",
)
# The purchases the journal names (every entry's `purchase_ids`, or those of the entries
# received at or after $2) that have no row; with a customer ($1), those whose recorded
# owner it is (a lost row has no other owner to select by).
_MISSING = _joined(
    """
FROM store_notifications n
CROSS JOIN LATERAL (
    SELECT n.store, u.purchase_id FROM unnest(n.purchase_ids) AS u(purchase_id)) AS k""",
    _RECORDED,
    """WHERE ($2::timestamptz IS NULL OR n.received_at >= $2)
  AND ($1::text IS NULL OR n.purchase_ids && ARRAY(
        SELECT o.purchase_id FROM purchase_owners o WHERE o.app_user_id = ANY (""",
    _CUSTOMER_IDS,
    """)))
  AND NOT EXISTS (
        SELECT 1 FROM purchases p WHERE p.store = k.store AND p.purchase_id = k.purchase_id)
  AND ($1::text IS NULL OR r.recorded_owner = $1)
""",
)
COUNT_MISSING = _joined(
    "SELECT count(*) FROM (SELECT DISTINCT k.store, k.purchase_id", _MISSING, ") AS missing"
)
# One page of it, each purchase once, at the first selected entry naming it: the next $4
# after (entry $3, purchase id $5). The journal is read once across the pages (by its id).
MISSING_PAGE = _joined(
    "\nSELECT n.id AS entry_id, k.store, k.purchase_id, r.*",
    _MISSING,
    """  AND n.id >= $3 AND (n.id, k.purchase_id) > ($3, $5)
""",
    _SHARE_OF_K,
    """  AND NOT EXISTS (
        SELECT 1 FROM store_notifications e
        WHERE e.store = n.store AND e.purchase_ids @> ARRAY[k.purchase_id] AND e.id < n.id
          AND ($2::timestamptz IS NULL OR e.received_at >= $2))
ORDER BY n.id, k.purchase_id
LIMIT $4
""",
)
# Purchases whose owner was copied from `purchases` when the record began (migrations/0009)
# that no entry names and that have no row: stored before the journal kept submissions. No
# entry was received for them, so none with `since` ($2); the next $4 after (store $3,
# purchase id $5).
_UNJOURNALED = _joined(
    """
FROM (SELECT DISTINCT store, purchase_id FROM purchase_owners
      WHERE notification_id IS NULL AND ($1::text IS NULL OR app_user_id = ANY (""",
    _CUSTOMER_IDS,
    """))) AS k""",
    _RECORDED,
    """WHERE $2::timestamptz IS NULL
  AND NOT EXISTS (
        SELECT 1 FROM purchases p WHERE p.store = k.store AND p.purchase_id = k.purchase_id)
  AND NOT EXISTS (
        SELECT 1 FROM store_notifications e
        WHERE e.store = k.store AND e.purchase_ids @> ARRAY[k.purchase_id])
  AND ($1::text IS NULL OR r.recorded_owner = $1)
""",
)
COUNT_UNJOURNALED = _joined("SELECT count(*)", _UNJOURNALED)
UNJOURNALED_PAGE = _joined(
    "\nSELECT k.store, k.purchase_id, r.*",
    _UNJOURNALED,
    """  AND (k.store, k.purchase_id) > ($3, $5)
""",
    _SHARE_OF_K,
    """ORDER BY k.store, k.purchase_id
LIMIT $4
""",
)
# Every entry whose events were applied to one of these purchases ($2), in journal order:
# their ids by the GIN index, one purchase at a time: a LATERAL that OFFSET 0 keeps from
# being flattened, since the planner guesses 0.5 % of the journal per joined look-up and would
# rather hash-join a read of the whole journal (seconds a page at 20M entries). (`purchase_ids
# && $2` was planned as a
# read of the whole journal for each page, comparing every row's ids with all of the page's:
# 68 ms a page on a journal of 10,000 entries, 2 ms so.)
SELECT_ENTRIES = """
SELECT id, store, message_id, notification_type, result, payload, reads, purchase_ids,
       received_at, payload_pruned_at, checkpoint
FROM store_notifications
WHERE store = $1 AND id = ANY(ARRAY(
    SELECT n.id FROM unnest($2::text[]) AS u(purchase_id)
    CROSS JOIN LATERAL (
        SELECT e.id FROM store_notifications e WHERE e.purchase_ids @> ARRAY[u.purchase_id]
        OFFSET 0) AS n))
ORDER BY id
"""
LOCK_PURCHASE = """
SELECT state, app_user_id FROM purchases WHERE store = $1 AND purchase_id = $2 FOR UPDATE
"""
LATEST_ENTRY = """
SELECT max(id) FROM store_notifications WHERE store = $1 AND purchase_ids @> ARRAY[$2]::text[]
"""
# A recreated row was first stored when the lost one was.
RESTORE_CREATED_AT = """
UPDATE purchases SET created_at = $3 WHERE store = $1 AND purchase_id = $2
"""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which purchases to replay: all, a customer's (an alias means its customer), those an
    entry received at or after `since` touched; both filters together intersect."""

    since: datetime | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One share of the selected purchases, for a run in several processes: stored rows whose
    id modulo `of` is `index`, lost ones by a hash of their purchase id. `Part()`: all."""

    index: int = 0
    of: int = 1


WHOLE = Part()


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
    """How many stored purchases `selection` takes in."""
    return int(await conn.fetchval(COUNT_SELECTED, selection.customer, selection.since))


async def selected_page(
    conn: asyncpg.Connection,
    selection: Selection,
    after_id: int,
    limit: int,
    part: Part = WHOLE,
) -> list[tuple[int, StoredPurchase]]:
    """The next `limit` selected purchases of `part` after row id `after_id`, with their row
    ids."""
    rows = await conn.fetch(
        SELECT_PAGE, selection.customer, selection.since, after_id, limit, part.of, part.index
    )
    return [(r["id"], _stored(r)) for r in rows]


async def count_missing(conn: asyncpg.Connection, selection: Selection) -> int:
    """How many selected purchases the journal names that have no row."""
    args = (selection.customer, selection.since)
    named = await conn.fetchval(COUNT_MISSING, *args)
    return int(named) + int(await conn.fetchval(COUNT_UNJOURNALED, *args))


async def missing_page(
    conn: asyncpg.Connection,
    selection: Selection,
    after: tuple[int, str],
    limit: int,
    part: Part = WHOLE,
) -> list[tuple[tuple[int, str], MissingPurchase]]:
    """The next `limit` selected purchases of `part` the journal's entries name that have no
    row, after `after` (the id of the first entry naming the last one, its purchase id), with
    theirs."""
    rows = await _page(conn, MISSING_PAGE, selection, after, limit=limit, part=part)
    return [((r["entry_id"], r["purchase_id"]), _missing(r)) for r in rows]


async def _page(
    conn: asyncpg.Connection,
    sql: str,
    selection: Selection,
    after: tuple[Any, str],
    *,
    limit: int,
    part: Part,
) -> list[asyncpg.Record]:
    """One page of MISSING_PAGE or UNJOURNALED_PAGE (their parameters are the same)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        sql, selection.customer, selection.since, after[0], limit, after[1], part.of, part.index
    )
    return rows


async def unjournaled_page(
    conn: asyncpg.Connection,
    selection: Selection,
    after: tuple[str, str],
    limit: int,
    part: Part = WHOLE,
) -> list[tuple[tuple[str, str], MissingPurchase]]:
    """The next `limit` selected purchases of `part` without a row that only the owner record
    names (no entry: stored before the journal kept submissions), after (store, purchase id)."""
    rows = await _page(conn, UNJOURNALED_PAGE, selection, after, limit=limit, part=part)
    return [((r["store"], r["purchase_id"]), _missing(r)) for r in rows]


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
            checkpoint=_json(r["checkpoint"]),
        )
        for r in rows
    ]


async def lock_for_fix(conn: asyncpg.Connection, store: Store, purchase_id: str) -> Locked | None:
    """Lock the purchase row for the transaction; its state, owner and latest journal entry
    as they are now (None when the row is gone)."""
    row = await conn.fetchrow(LOCK_PURCHASE, store.value, purchase_id)
    if row is None:
        return None
    return Locked(
        _json(row["state"]), row["app_user_id"], await latest_entry(conn, store, purchase_id)
    )


async def latest_entry(conn: asyncpg.Connection, store: Store, purchase_id: str) -> int | None:
    """The id of the latest journal entry applied to the purchase."""
    latest: int | None = await conn.fetchval(LATEST_ENTRY, store.value, purchase_id)
    return latest


async def restore_created_at(
    conn: asyncpg.Connection, store: Store, purchase_id: str, created_at: datetime
) -> None:
    """Date a recreated row (locked) by when the lost one was first stored."""
    await conn.execute(RESTORE_CREATED_AT, store.value, purchase_id, created_at)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _recorded(r: asyncpg.Record) -> Recorded | None:
    if not r["recorded"]:
        return None
    return Recorded(r["recorded_owner"], r["recorded_created_at"], r["recorded_entry"])


def _missing(r: asyncpg.Record) -> MissingPurchase:
    return MissingPurchase(Store(r["store"]), r["purchase_id"], _recorded(r))


def _stored(r: asyncpg.Record) -> StoredPurchase:
    return StoredPurchase(
        store=Store(r["store"]),
        purchase_id=r["purchase_id"],
        owner=r["app_user_id"],
        state=_json(r["state"]),
        view=purchase_view(r),
        state_updated_at=r["state_updated_at"],
        created_at=r["created_at"],
        recorded=_recorded(r),
    )
