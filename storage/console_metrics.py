"""SQL of the console's business page, and the daily rollup it reads (feed_daily,
migrations/0016): what the change feed's snapshots changed per day, entitlement and store,
added in the statement that appends a transaction's last event
(storage/purchases.APPEND_LAST_EVENT). Every read here costs
the same at any size of history: a few rollup rows a day, or partial indexes whose size
follows the customers active now (docs/performance.md, "Revenue and the business page at
scale")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from entitlements.feed_rollup import FeedDay, combined

# The changes of one or more events, combined per key and applied in key order (every writer
# holds the feed lock here already: storage/purchases.record_changes).
# feed_daily's rows of one transaction, in key order; a CTE of storage/purchases.
# APPEND_LAST_EVENT, whose parameters $7-$14 they are, written after its feed lock is taken.
ADD_FEED_DAYS_LOCKED = """
INSERT INTO feed_daily AS f (day, entitlement, store, active_change, trials, conversions,
    refunds, billing_issues)
SELECT * FROM unnest($7::date[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],
    $12::bigint[], $13::bigint[], $14::bigint[])
WHERE EXISTS (SELECT 1 FROM feed_lock)
ORDER BY 1, 2, 3
ON CONFLICT (day, entitlement, store) DO UPDATE SET
    active_change = f.active_change + EXCLUDED.active_change,
    trials = f.trials + EXCLUDED.trials, conversions = f.conversions + EXCLUDED.conversions,
    refunds = f.refunds + EXCLUDED.refunds,
    billing_issues = f.billing_issues + EXCLUDED.billing_issues
"""
# Active before the window (day NULL: the sum of every earlier change), then each day's change.
ACTIVE_CHANGES = """
SELECT NULL::date AS day, entitlement, store, sum(active_change) AS change
FROM feed_daily WHERE day < $1
GROUP BY entitlement, store
UNION ALL
SELECT day, entitlement, store, active_change
FROM feed_daily WHERE day BETWEEN $1 AND $2 AND active_change <> 0
"""
TRANSITIONS = """
SELECT day, sum(trials) AS trials, sum(conversions) AS conversions, sum(refunds) AS refunds,
       sum(billing_issues) AS billing_issues
FROM feed_daily WHERE day BETWEEN $1 AND $2
GROUP BY day
"""
# MRR per currency before the window (day NULL) and each day's change in it.
MRR_CHANGES = """
SELECT NULL::date AS day, currency, sum(amount) AS amount, sum(subscriptions) AS subscriptions
FROM mrr_daily WHERE day < $1 AND ($3::boolean IS NULL OR is_sandbox = $3)
GROUP BY currency
UNION ALL
SELECT day, currency, sum(amount), sum(subscriptions)
FROM mrr_daily WHERE day BETWEEN $1 AND $2 AND ($3::boolean IS NULL OR is_sandbox = $3)
GROUP BY day, currency
"""
# Running now: over the partial indexes purchases_running_trials and grants_open.
RUNNING_TRIALS = """
SELECT count(*) FROM purchases
WHERE period_type = 'trial' AND status IN ('active', 'grace_period') AND NOT superseded
  AND greatest(expires_at, grace_period_expires_at) > $1
  AND ($2::boolean IS NULL OR is_sandbox = $2)
"""
OPEN_GRANTS = """
SELECT count(*) FROM grants
WHERE ended_at IS NULL AND starts_at <= $1 AND (expires_at IS NULL OR expires_at > $1)
"""
# From the store's time of a notification to its arrival, for the notifications the stores
# pushed (not app submissions, nor statements a reconciliation read): the median per day.
LATENCY_BY_DAY = """
SELECT date_trunc('day', received_at, 'UTC') AS day, store,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY greatest(extract(epoch FROM received_at - signed_at), 0)
       ) AS median_seconds,
       count(*) AS notifications
FROM store_notifications
WHERE received_at >= $1 AND received_at <= $2 AND signed_at IS NOT NULL
  AND notification_type IS DISTINCT FROM 'SUBMISSION'
  AND notification_type IS DISTINCT FROM 'RECONCILE'
  AND reason IS DISTINCT FROM 'recovered by reconciliation'
GROUP BY 1, 2
"""


def feed_day_arrays(changes: list[FeedDay]) -> tuple[list[Any], ...] | None:
    """The changes combined per feed_daily row, in key order, as the columns' arrays of
    ADD_FEED_DAYS_LOCKED (None: nothing changes)."""
    rows = combined(changes)
    if not rows:
        return None
    return (
        [r.day for r in rows],
        [r.entitlement for r in rows],
        [r.store for r in rows],
        [r.active_change for r in rows],
        [r.trials for r in rows],
        [r.conversions for r in rows],
        [r.refunds for r in rows],
        [r.billing_issues for r in rows],
    )


async def active_changes(conn: asyncpg.Connection, first: date, last: date) -> list[dict[str, Any]]:
    """(day, entitlement, store, change): day None is everything before `first`."""
    return [dict(r) for r in await conn.fetch(ACTIVE_CHANGES, first, last)]


async def transitions(conn: asyncpg.Connection, first: date, last: date) -> list[dict[str, Any]]:
    """Per day from `first` to `last`: trial starts, conversions, refunds, billing issues."""
    return [dict(r) for r in await conn.fetch(TRANSITIONS, first, last)]


async def mrr_changes(
    conn: asyncpg.Connection, first: date, last: date, sandbox: bool | None
) -> list[dict[str, Any]]:
    """(day, currency, amount, subscriptions): day None is everything before `first`."""
    return [dict(r) for r in await conn.fetch(MRR_CHANGES, first, last, sandbox)]


async def running_trials(conn: asyncpg.Connection, now: datetime, sandbox: bool | None) -> int:
    """Store purchases in a free trial (or its grace period) at `now`."""
    return int(await conn.fetchval(RUNNING_TRIALS, now, sandbox))


async def open_grants(conn: asyncpg.Connection, now: datetime) -> int:
    """Promotional grants giving access at `now`."""
    return int(await conn.fetchval(OPEN_GRANTS, now))


async def latency_by_day(
    conn: asyncpg.Connection, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per day and store from `since` to `until`: the median seconds from a pushed
    notification's store time to its arrival, and how many there were."""
    return [dict(r) for r in await conn.fetch(LATENCY_BY_DAY, since, until)]
