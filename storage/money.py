"""SQL of money (issue 22): charges and their refunds, and the daily rollups kept in the same
transaction (revenue_daily, mrr_daily; migrations/0015). A charge row is inserted once (its
key is the store's id of the charge), a refund set once (`refunded_at IS NULL`), and only
what a statement inserted or set reaches the rollups: duplicates, late or shuffled
deliveries and replays never count a charge twice."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from entitlements.money import Charge, Delta, charge_deltas, combined, refund_deltas

# Every charge of one statement in one round trip; RETURNING names those not stored before.
INSERT_CHARGES = """
INSERT INTO charges (store, purchase_id, charge_id, product_id, app, is_sandbox, amount,
    currency, charged_at, period_end, months, refunded_at, refunded_amount, created_at)
SELECT c.store, c.purchase_id, c.charge_id, c.product_id, c.app, c.is_sandbox, c.amount,
    c.currency, c.charged_at, c.period_end, c.months, c.refunded_at,
    CASE WHEN c.refunded_at IS NULL THEN NULL ELSE c.amount END, $13
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[],
    $7::numeric[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::numeric[],
    $12::timestamptz[])
    AS c(store, purchase_id, charge_id, product_id, app, is_sandbox, amount, currency,
         charged_at, period_end, months, refunded_at)
ORDER BY 1, 2, 3
ON CONFLICT (store, purchase_id, charge_id) DO NOTHING
RETURNING store, purchase_id, charge_id
"""
SET_REFUND = """
UPDATE charges SET refunded_at = $4, refunded_amount = amount
WHERE store = $1 AND purchase_id = $2 AND charge_id = $3 AND refunded_at IS NULL
RETURNING product_id, app, is_sandbox, amount, currency, charged_at, period_end, months
"""
# The combined deltas, applied in key order (one lock order for every writer).
ADD_REVENUE = """
INSERT INTO revenue_daily AS r (day, store, currency, is_sandbox, gross, refunded, charges,
    refunds)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::boolean[], $5::numeric[],
    $6::numeric[], $7::bigint[], $8::bigint[])
ORDER BY 1, 2, 3, 4
ON CONFLICT (day, store, currency, is_sandbox) DO UPDATE SET
    gross = r.gross + EXCLUDED.gross, refunded = r.refunded + EXCLUDED.refunded,
    charges = r.charges + EXCLUDED.charges, refunds = r.refunds + EXCLUDED.refunds
"""
ADD_MRR = """
INSERT INTO mrr_daily AS m (day, store, currency, is_sandbox, amount, subscriptions)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::boolean[], $5::numeric[],
    $6::bigint[])
ORDER BY 1, 2, 3, 4
ON CONFLICT (day, store, currency, is_sandbox) DO UPDATE SET
    amount = m.amount + EXCLUDED.amount, subscriptions = m.subscriptions + EXCLUDED.subscriptions
"""
# ADD_REVENUE ($1-$8) then ADD_MRR (renumbered $9-$14) in one round trip, in the same lock
# order: the MRR rows qualify only once the (uncorrelated) count of the revenue CTE is known,
# so every revenue row is written before the first MRR row is. (Constants only: no input.)
ADD_REVENUE_AND_MRR = (
    "WITH revenue AS ("  # noqa: S608
    + ADD_REVENUE
    + "RETURNING 1\n)"
    + re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + 8}", ADD_MRR).replace(
        "ORDER BY", "WHERE (SELECT count(*) FROM revenue) >= 0\nORDER BY", 1
    )
)
REVENUE_DAYS = """
SELECT day, store, currency, sum(gross) AS gross, sum(refunded) AS refunded,
       sum(charges) AS charges, sum(refunds) AS refunds
FROM revenue_daily
WHERE day BETWEEN $1 AND $2 AND ($3::boolean IS NULL OR is_sandbox = $3)
GROUP BY day, store, currency
ORDER BY day, store, currency
"""
MRR_AS_OF = """
SELECT currency, sum(amount) AS amount, sum(subscriptions) AS subscriptions
FROM mrr_daily
WHERE day <= $1 AND ($2::boolean IS NULL OR is_sandbox = $2)
GROUP BY currency
HAVING sum(subscriptions) <> 0 OR sum(amount) <> 0
ORDER BY currency
"""


async def record(conn: asyncpg.Connection, charges: Sequence[Charge], now: datetime) -> int:
    """Store the charges (and refunds) not stored yet and add them to the rollups; how many
    rollup rows changed."""
    if not charges:
        return 0
    rows = await conn.fetch(
        INSERT_CHARGES,
        [c.store.value for c in charges],
        [c.purchase_id for c in charges],
        [c.charge_id for c in charges],
        [c.product_id for c in charges],
        [c.app for c in charges],
        [c.is_sandbox for c in charges],
        [c.amount for c in charges],
        [c.currency for c in charges],
        [c.charged_at for c in charges],
        [c.period_end for c in charges],
        [c.months for c in charges],
        [c.refunded_at for c in charges],
        now,
    )
    inserted = {(r["store"], r["purchase_id"], r["charge_id"]) for r in rows}
    deltas: list[Delta] = []
    for charge in charges:
        if (charge.store.value, charge.purchase_id, charge.charge_id) in inserted:
            deltas += charge_deltas(charge)
        elif charge.refunded_at is not None:
            row = await conn.fetchrow(
                SET_REFUND,
                charge.store.value,
                charge.purchase_id,
                charge.charge_id,
                charge.refunded_at,
            )
            if row is not None:
                deltas += refund_deltas(_stored(charge, row), charge.refunded_at)
    combined_rows = combined(deltas)
    if combined_rows:
        await _apply(conn, combined_rows)
    return len(combined_rows)


def _stored(charge: Charge, row: asyncpg.Record) -> Charge:
    """The charge as first stored (what its refund takes back), not as re-stated."""
    return Charge(
        store=charge.store,
        purchase_id=charge.purchase_id,
        charge_id=charge.charge_id,
        product_id=row["product_id"],
        app=row["app"],
        is_sandbox=row["is_sandbox"],
        amount=row["amount"],
        currency=row["currency"],
        charged_at=row["charged_at"],
        period_end=row["period_end"],
        months=row["months"],
    )


async def _apply(conn: asyncpg.Connection, rows: list[Delta]) -> None:
    revenue = [r for r in rows if r.gross or r.refunded or r.charges or r.refunds]
    mrr = [r for r in rows if r.mrr or r.subscriptions]
    revenue_args = (
        [r.day for r in revenue],
        [r.store.value for r in revenue],
        [r.currency for r in revenue],
        [r.is_sandbox for r in revenue],
        [r.gross for r in revenue],
        [r.refunded for r in revenue],
        [r.charges for r in revenue],
        [r.refunds for r in revenue],
    )
    mrr_args = (
        [r.day for r in mrr],
        [r.store.value for r in mrr],
        [r.currency for r in mrr],
        [r.is_sandbox for r in mrr],
        [r.mrr for r in mrr],
        [r.subscriptions for r in mrr],
    )
    if revenue and mrr:  # a new paid period: both in one round trip
        await conn.execute(ADD_REVENUE_AND_MRR, *revenue_args, *mrr_args)
    elif revenue:
        await conn.execute(ADD_REVENUE, *revenue_args)
    elif mrr:
        await conn.execute(ADD_MRR, *mrr_args)


async def revenue_days(
    conn: asyncpg.Connection, first: date, last: date, sandbox: bool | None
) -> list[asyncpg.Record]:
    """Per day, store and currency between `first` and `last` (inclusive)."""
    return list(await conn.fetch(REVENUE_DAYS, first, last, sandbox))


async def mrr_as_of(
    conn: asyncpg.Connection, day: date, sandbox: bool | None
) -> list[asyncpg.Record]:
    """MRR and active paying subscriptions per currency at the end of `day`."""
    return list(await conn.fetch(MRR_AS_OF, day, sandbox))
