"""SQL of `receiptd extend`: its runs (`extend_runs`: arguments, status, counts) and their
items (`extend_items`: one per thing asked of a store, with its status), the lock that keeps
one run at a time, and the renewing subscriptions a run plans from. Functions take their
connection."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from entitlements.model import Store
from storage.database import holds_session_state

# pg_advisory_lock key held by a run for its whole length (next to reconcile's LOCK_KEYS,
# MIGRATION_LOCK_KEY, FEED_LOCK_KEY and RETENTION_LOCK_KEY).
LOCK_KEY = 0x657874656E640001  # "extend.."

TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
_RUN_COLUMNS = "id, arguments, status, counts, started_at"
OPEN_RUN = f"SELECT {_RUN_COLUMNS} FROM extend_runs WHERE status = 'running'"  # noqa: S608
START_RUN = f"""
INSERT INTO extend_runs (arguments, started_at, updated_at) VALUES ($1::jsonb, $2, $2)
RETURNING {_RUN_COLUMNS}
"""  # noqa: S608
SAVE_COUNTS = "UPDATE extend_runs SET counts = $2::jsonb, updated_at = $3 WHERE id = $1"
FINISH = """
UPDATE extend_runs SET status = 'finished', counts = $2::jsonb, finished_at = $3, updated_at = $3
WHERE id = $1
"""
ABANDON = """
UPDATE extend_runs SET status = 'abandoned', finished_at = $2, updated_at = $2 WHERE id = $1
"""
ADD_ITEM = """
INSERT INTO extend_items (run_id, store, key, app, environment, product_id, app_user_id,
    expires_before, request_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
_ITEM_COLUMNS = """id, store, key, app, environment, product_id, app_user_id, expires_before,
    request_id, status, detail, answer"""
ITEMS = f"SELECT {_ITEM_COLUMNS} FROM extend_items WHERE run_id = $1 ORDER BY id"  # noqa: S608
MARK = """
UPDATE extend_items SET status = $2, detail = $3, answer = $4::jsonb, updated_at = $5
WHERE id = $1
"""
# Renewing subscriptions: held (not replaced), active or in a grace period; $1 a product or NULL.
_RENEWING = """
FROM purchases
WHERE store = $2 AND kind = 'subscription' AND status IN ('active', 'grace_period')
  AND NOT superseded AND ($1::text IS NULL OR product_id = $1)
"""
RENEWING_APPLE = (
    "SELECT DISTINCT app, state->>'environment' AS environment, product_id"
    + _RENEWING
    + "ORDER BY product_id, environment, app"
)
RENEWING_PLAY = (
    "SELECT id, purchase_id, app, state->>'environment' AS environment, product_id, "
    "app_user_id, expires_at" + _RENEWING + "ORDER BY id"
)
# The latest stored expiry of a Play subscription token (its add-on line items' rows too).
EXPIRY_OF = """
SELECT max(expires_at) FROM purchases
WHERE store = 'play_store' AND split_part(purchase_id, '|', 1) = $1
"""


@dataclass(frozen=True, slots=True)
class Run:
    """A run as stored."""

    id: int
    arguments: Mapping[str, Any]
    status: str
    counts: Mapping[str, Any]
    started_at: datetime


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item a new run plans: what to ask of which store."""

    store: Store
    key: str
    app: str | None
    environment: str | None
    product_id: str
    request_id: str
    app_user_id: str | None = None
    expires_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """An item as stored, with where it got to."""

    id: int
    store: Store
    key: str
    app: str | None
    environment: str | None
    product_id: str
    app_user_id: str | None
    expires_before: datetime | None
    request_id: str
    status: str
    detail: str
    answer: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppleProduct:
    """A product with renewing App Store subscriptions, in one app and environment."""

    app: str | None
    environment: str | None
    product_id: str


@dataclass(frozen=True, slots=True)
class PlaySubscription:
    """A renewing Play subscription row (an add-on line item's row is `token|product`)."""

    row_id: int
    purchase_id: str
    app: str | None
    environment: str | None
    product_id: str
    app_user_id: str | None
    expires_at: datetime | None


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the extend lock for this session; False when a run holds it."""
    holds_session_state(conn)
    return bool(await conn.fetchval(TRY_LOCK, LOCK_KEY))


async def unlock(conn: asyncpg.Connection) -> None:
    """Release the extend lock taken by `try_lock` on this session."""
    await conn.execute(UNLOCK, LOCK_KEY)


async def open_run(conn: asyncpg.Connection) -> Run | None:
    """The run that has not ended (an interrupted one), if any."""
    row = await conn.fetchrow(OPEN_RUN)
    return _run(row) if row is not None else None


async def start_run(
    conn: asyncpg.Connection,
    arguments: Mapping[str, Any],
    items: Sequence[NewItem],
    now: datetime,
) -> Run:
    """Record a new run with its `arguments` and every item it will ask, all pending (one
    transaction: a run is planned whole or not at all)."""
    async with conn.transaction():
        row = await conn.fetchrow(START_RUN, json.dumps(dict(arguments), sort_keys=True), now)
        assert row is not None
        run = _run(row)
        await conn.executemany(
            ADD_ITEM,
            [
                (
                    run.id,
                    i.store.value,
                    i.key,
                    i.app,
                    i.environment,
                    i.product_id,
                    i.app_user_id,
                    i.expires_before,
                    i.request_id,
                    now,
                )
                for i in items
            ],
        )
    return run


async def items(conn: asyncpg.Connection, run_id: int) -> list[Item]:
    """Every item of the run, in the order they are asked."""
    rows = await conn.fetch(ITEMS, run_id)
    return [
        Item(
            id=r["id"],
            store=Store(r["store"]),
            key=r["key"],
            app=r["app"],
            environment=r["environment"],
            product_id=r["product_id"],
            app_user_id=r["app_user_id"],
            expires_before=r["expires_before"],
            request_id=r["request_id"],
            status=r["status"],
            detail=r["detail"],
            answer=_json(r["answer"]),
        )
        for r in rows
    ]


async def mark(
    conn: asyncpg.Connection,
    item_id: int,
    status: str,
    now: datetime,
    *,
    detail: str = "",
    answer: Mapping[str, Any] | None = None,
) -> None:
    """Where an item got to (and the store's words about it)."""
    await conn.execute(
        MARK, item_id, status, detail, json.dumps(dict(answer or {}), default=str), now
    )


async def save_counts(
    conn: asyncpg.Connection, run_id: int, counts: Mapping[str, Any], now: datetime
) -> None:
    """The run's counts so far (its report, should it stop here)."""
    await conn.execute(SAVE_COUNTS, run_id, json.dumps(dict(counts), sort_keys=True), now)


async def finish(
    conn: asyncpg.Connection, run_id: int, counts: Mapping[str, Any], now: datetime
) -> None:
    """End a run that asked everything, with its final counts."""
    await conn.execute(FINISH, run_id, json.dumps(dict(counts), sort_keys=True), now)


async def abandon(conn: asyncpg.Connection, run_id: int, now: datetime) -> None:
    """End an interrupted run that `--restart` replaces (its counts stay as saved)."""
    await conn.execute(ABANDON, run_id, now)


async def renewing_apple(conn: asyncpg.Connection, product: str | None) -> list[AppleProduct]:
    """Each (app, environment, product) with renewing App Store subscriptions (`product`:
    only that one)."""
    rows = await conn.fetch(RENEWING_APPLE, product, Store.APP_STORE.value)
    return [AppleProduct(r["app"], r["environment"], r["product_id"]) for r in rows]


async def renewing_play(conn: asyncpg.Connection, product: str | None) -> list[PlaySubscription]:
    """Every renewing Play subscription row, oldest first (`product`: only that one's)."""
    rows = await conn.fetch(RENEWING_PLAY, product, Store.PLAY_STORE.value)
    return [
        PlaySubscription(
            r["id"],
            r["purchase_id"],
            r["app"],
            r["environment"],
            r["product_id"],
            r["app_user_id"],
            r["expires_at"],
        )
        for r in rows
    ]


async def play_expiry(conn: asyncpg.Connection, token: str) -> datetime | None:
    """The latest stored expiry of the Play subscription `token`."""
    expiry: datetime | None = await conn.fetchval(EXPIRY_OF, token)
    return expiry


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return dict(loaded or {})


def _run(r: asyncpg.Record) -> Run:
    return Run(
        id=r["id"],
        arguments=_json(r["arguments"]),
        status=r["status"],
        counts=_json(r["counts"]),
        started_at=r["started_at"],
    )
