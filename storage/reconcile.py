"""SQL of `receiptd reconcile`: its runs (`reconcile_runs`: arguments, window, position,
counts), the lock that keeps one run per store, and the purchases it reads. Functions take
their connection."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.codec import from_jsonable
from entitlements.model import PurchaseState, Store
from entitlements.ownership import Key
from entitlements.reconcile import Counts, Position
from storage.database import holds_session_state

# pg_advisory_lock keys, one per store, held by a run for its whole length (next to
# MIGRATION_LOCK_KEY "receiptd", FEED_LOCK_KEY and RETENTION_LOCK_KEY).
_LOCK_BASE = 0x7265636F6E630000  # "recon.."
LOCK_KEYS = {Store.APP_STORE: _LOCK_BASE + 1, Store.PLAY_STORE: _LOCK_BASE + 2}

TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
OPEN_RUN = """
SELECT id, arguments, since, until, position, checked, missing, corrected, failed, started_at
FROM reconcile_runs WHERE store = $1 AND finished_at IS NULL
"""
START_RUN = """
INSERT INTO reconcile_runs (store, arguments, since, until, started_at, updated_at)
VALUES ($1, $2::jsonb, $3, $4, $5, $5)
RETURNING id, arguments, since, until, position, checked, missing, corrected, failed, started_at
"""
SAVE = """
UPDATE reconcile_runs
SET position = $2::jsonb, checked = $3, missing = $4, corrected = $5, failed = $6,
    updated_at = $7
WHERE id = $1
"""
CLOSE = """
UPDATE reconcile_runs SET finished_at = $2, updated_at = $2, outcome = $3 WHERE id = $1
"""
LAST_CLEAN_UNTIL = """
SELECT until FROM reconcile_runs
WHERE store = $1 AND outcome = 'finished' AND failed = 0
ORDER BY id DESC LIMIT 1
"""
STATES_OF = """
SELECT purchase_id, state FROM purchases WHERE store = $1 AND purchase_id = ANY($2::text[])
"""
# A customer's purchases, for the console's re-read of one customer.
CUSTOMER_PURCHASES = """
SELECT id, store, purchase_id, state->>'environment' AS environment, app FROM purchases
WHERE app_user_id = $1 AND NOT superseded ORDER BY id
"""
HELD = "SELECT EXISTS (SELECT 1 FROM purchases WHERE store = $1 AND purchase_id = $2)"
# Subscriptions that may still change (not expired, revoked or replaced) and whose stored
# state (its newest statement) is older than $2: re-read, oldest row first, after row id $3.
_STALE = """
FROM purchases
WHERE store = $1 AND kind = 'subscription' AND status NOT IN ('expired', 'revoked')
  AND NOT superseded AND state_updated_at < $2 AND id > $3
"""
COUNT_STALE = "SELECT count(*)" + _STALE
STALE_PAGE = (
    "SELECT id, purchase_id, state->>'environment' AS environment, app"
    + _STALE
    + """
ORDER BY id
LIMIT $4
"""
)


@dataclass(frozen=True, slots=True)
class Run:
    """A run as stored."""

    id: int
    arguments: Mapping[str, Any]
    since: datetime | None
    until: datetime
    position: Position
    counts: Counts
    started_at: datetime


@dataclass(frozen=True, slots=True)
class StalePurchase:
    """A purchase to re-read: its row id (the re-reads' cursor), id and environment."""

    row_id: int
    purchase_id: str
    environment: str | None
    app: str | None = None  # the app it was bought in (None: stored before apps were kept)


async def try_lock(conn: asyncpg.Connection, store: Store) -> bool:
    """Take the store's reconciliation lock for this session; False when a run holds it."""
    holds_session_state(conn)
    return bool(await conn.fetchval(TRY_LOCK, LOCK_KEYS[store]))


async def unlock(conn: asyncpg.Connection, store: Store) -> None:
    """Release the store's reconciliation lock taken by `try_lock` on this session."""
    await conn.execute(UNLOCK, LOCK_KEYS[store])


async def open_run(conn: asyncpg.Connection, store: Store) -> Run | None:
    """The store's run that has not finished (an interrupted one), if any."""
    row = await conn.fetchrow(OPEN_RUN, store.value)
    return _run(row) if row is not None else None


async def start_run(
    conn: asyncpg.Connection,
    store: Store,
    arguments: Mapping[str, Any],
    *,
    since: datetime | None,
    until: datetime,
    now: datetime,
) -> Run:
    """Record a new run of the store, started `now`, with its `arguments` and its window
    from `since` (None: all the store keeps) to `until`."""
    row = await conn.fetchrow(
        START_RUN, store.value, json.dumps(arguments, sort_keys=True), since, until, now
    )
    assert row is not None
    return _run(row)


async def save(
    conn: asyncpg.Connection, run_id: int, position: Position, counts: Counts, now: datetime
) -> None:
    """Record the last item completed and the counts so far."""
    await conn.execute(
        SAVE,
        run_id,
        json.dumps(position.to_json()),
        counts.checked,
        counts.missing,
        counts.corrected,
        counts.failed,
        now,
    )


async def close(conn: asyncpg.Connection, run_id: int, now: datetime, *, finished: bool) -> None:
    """End a run: `finished`, or abandoned (another run with other arguments replaces it)."""
    await conn.execute(CLOSE, run_id, now, "finished" if finished else "abandoned")


async def last_clean_until(conn: asyncpg.Connection, store: Store) -> datetime | None:
    """The window end of the store's last run that finished without failures."""
    until: datetime | None = await conn.fetchval(LAST_CLEAN_UNTIL, store.value)
    return until


async def states_of(
    conn: asyncpg.Connection, store: Store, purchase_ids: Sequence[str]
) -> dict[Key, PurchaseState]:
    """The stored state of those of these purchases that have one."""
    rows = await conn.fetch(STATES_OF, store.value, sorted(set(purchase_ids)))
    out: dict[Key, PurchaseState] = {}
    for r in rows:
        raw = json.loads(r["state"]) if isinstance(r["state"], str) else r["state"]
        if raw:
            out[(store, r["purchase_id"])] = from_jsonable(PurchaseState, raw)
    return out


async def customer_purchases(
    conn: asyncpg.Connection, app_user_id: str
) -> list[tuple[Store, StalePurchase]]:
    """Every purchase of the customer that is not replaced, to re-read from its store."""
    rows = await conn.fetch(CUSTOMER_PURCHASES, app_user_id)
    return [
        (
            Store(r["store"]),
            StalePurchase(r["id"], r["purchase_id"], r["environment"], r["app"]),
        )
        for r in rows
    ]


async def is_held(conn: asyncpg.Connection, store: Store, purchase_id: str) -> bool:
    """Whether the service holds this purchase."""
    return bool(await conn.fetchval(HELD, store.value, purchase_id))


async def count_stale(
    conn: asyncpg.Connection, store: Store, before: datetime, after_id: int
) -> int:
    """How many subscriptions after row id `after_id` are due for a re-read (still able to
    change, stored state older than `before`)."""
    return int(await conn.fetchval(COUNT_STALE, store.value, before, after_id))


async def stale_page(
    conn: asyncpg.Connection, store: Store, before: datetime, after_id: int, limit: int
) -> list[StalePurchase]:
    """The next `limit` subscriptions to re-read after row id `after_id`."""
    rows = await conn.fetch(STALE_PAGE, store.value, before, after_id, limit)
    return [StalePurchase(r["id"], r["purchase_id"], r["environment"], r["app"]) for r in rows]


def _run(r: asyncpg.Record) -> Run:
    arguments = json.loads(r["arguments"]) if isinstance(r["arguments"], str) else r["arguments"]
    position = json.loads(r["position"]) if isinstance(r["position"], str) else r["position"]
    return Run(
        id=r["id"],
        arguments=arguments,
        since=r["since"],
        until=r["until"],
        position=Position.from_json(position),
        counts=Counts(r["checked"], r["missing"], r["corrected"], r["failed"]),
        started_at=r["started_at"],
    )
