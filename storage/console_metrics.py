"""SQL of the console's business page, and the daily rollup it reads (feed_daily,
migrations/0016): what the change feed's snapshots changed per day, entitlement and store,
added in the statement that appends a transaction's last event
(storage/purchases.APPEND_LAST_EVENT). Every read here costs
the same at any size of history: a few rollup rows a day, or partial indexes whose size
follows the customers active now (docs/performance.md, "Revenue and the business page at
scale")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

BILLING_ISSUES = ("grace_period", "billing_retry", "on_hold")

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


@dataclass(frozen=True, slots=True)
class FeedDay:
    """One feed_daily key's changes."""

    day: date
    entitlement: str
    store: str
    active_change: int = 0
    trials: int = 0
    conversions: int = 0
    refunds: int = 0
    billing_issues: int = 0


def feed_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], at: datetime
) -> list[FeedDay]:
    """What replacing a customer's snapshot `old` (None: no event yet) by `new` at `at`
    changes in feed_daily, the rows with a change only. The same rules as the backfill of
    migrations/0016: `old` stops counting at `at` (unless its access ended before), `new`
    counts from `at` to its end; transitions compare each entitlement with `old`."""
    keys: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    today = _day(at)
    for name, was in (old or {}).items():
        gives, ends = _access(was, at)
        if gives:  # its -1 was on the day it ends (or nowhere): move it to today
            keys[(today, name, was["store"])][0] -= 1
            if ends is not None:
                keys[(_day(ends), name, was["store"])][0] += 1
    for name, now in new.items():
        store = now["store"]
        gives, ends = _access(now, at)
        if gives:
            keys[(today, name, store)][0] += 1
            if ends is not None:
                keys[(_day(ends), name, store)][0] -= 1
        prev = (old or {}).get(name) or {}
        pt, st = now.get("period_type"), now.get("status")
        prev_pt, prev_st = prev.get("period_type"), prev.get("status")
        row = keys[(today, name, store)]
        row[1] += pt == "trial" and prev_pt != "trial"
        row[2] += prev_pt == "trial" and pt in ("intro", "normal") and st == "active"
        row[3] += st == "revoked" and prev_st != "revoked" and store != "promotional"
        row[4] += st in BILLING_ISSUES and prev_st not in BILLING_ISSUES
    return [FeedDay(*key, *values) for key, values in sorted(keys.items()) if any(values)]


def combined(changes: list[FeedDay]) -> list[FeedDay]:
    """The changes summed per key, in key order (the lock order), zeros left out."""
    sums: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for c in changes:
        row = sums[(c.day, c.entitlement, c.store)]
        for i, v in enumerate(
            (c.active_change, c.trials, c.conversions, c.refunds, c.billing_issues)
        ):
            row[i] += v
    return [FeedDay(*key, *values) for key, values in sorted(sums.items()) if any(values)]


def _access(snapshot: Mapping[str, Any], at: datetime) -> tuple[bool, datetime | None]:
    """Whether the snapshot counts as giving access from `at`, and until when (None: no end)."""
    if not snapshot.get("active") or snapshot.get("store") == "promotional":
        return False, None
    if snapshot.get("status") == "grace_period":
        ends = _instant(snapshot.get("grace_period_expires_at"))
        if ends is None:
            return False, None
    else:
        ends = _instant(snapshot.get("expires_at"))
    return (ends is None or ends > at), ends


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


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
