"""SQL of the console's business page, and the daily rollup it reads (feed_daily,
migrations/0016): what the change feed's snapshots changed per day, entitlement and store,
added in the statement that appends a transaction's last event
(storage/purchases.APPEND_LAST_EVENT). Every read here costs
the same at any size of history: a few rollup rows a day, or partial indexes whose size
follows the customers active now (docs/performance.md, "Revenue and the business page at
scale")."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
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


# A UTC day is settled (no entry can still arrive for it) this long after its end: an
# entry's received_at is when its ingest transaction began, and none runs this long.
SETTLED_AFTER = timedelta(hours=1)
LATENCY_KEPT = """
SELECT day, store, median_seconds, notifications FROM latency_daily
WHERE day >= $1 AND day <= $2
"""
KEEP_LATENCY = """
INSERT INTO latency_daily (day, store, median_seconds, notifications)
SELECT * FROM unnest($1::date[], $2::text[], $3::float8[], $4::bigint[])
ON CONFLICT DO NOTHING
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def latency_by_day(
    conn: asyncpg.Connection, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per UTC day and store from `since` (a UTC midnight) to `until`: the median seconds
    from a pushed notification's store time to its arrival, and how many there were. Settled
    days come from latency_daily (those not there yet are computed once and kept); only the
    days since the last settled one are read from the journal."""
    first = since.astimezone(UTC).date()
    open_from = (until - SETTLED_AFTER).astimezone(UTC).date()  # the first unsettled day
    rows: list[dict[str, Any]] = []
    if first < open_from:
        kept = [dict(r) for r in await conn.fetch(LATENCY_KEPT, first, open_from - _DAY)]
        have = {r["day"] for r in kept}
        missing = [
            d for d in (first + _DAY * i for i in range((open_from - first).days)) if d not in have
        ]
        if missing:
            found = [
                dict(r)
                for r in await conn.fetch(
                    LATENCY_BY_DAY, _midnight(missing[0]), _midnight(missing[-1] + _DAY)
                )
            ]
            computed = [
                {**r, "day": r["day"].astimezone(UTC).date()}
                for r in found
                if r["day"].astimezone(UTC).date() in missing
                and r["day"] < _midnight(missing[-1] + _DAY)
            ]
            empty = set(missing) - {r["day"] for r in computed}
            keep = computed + [
                {"day": d, "store": "", "median_seconds": None, "notifications": 0} for d in empty
            ]
            await conn.execute(
                KEEP_LATENCY,
                [r["day"] for r in keep],
                [r["store"] for r in keep],
                [r["median_seconds"] for r in keep],
                [r["notifications"] for r in keep],
            )
            kept += computed
        rows = [{**r, "day": _midnight(r["day"])} for r in kept if r["store"] != ""]
    live_since = max(since, _midnight(open_from))
    rows += [dict(r) for r in await conn.fetch(LATENCY_BY_DAY, live_since, until)]
    return rows


_DAY = timedelta(days=1)
