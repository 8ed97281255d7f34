"""SQL of the console's business page: daily series over a window, from the purchases, the
change feed's entitlement snapshots and the journal. Each function takes its connection and
the window's days (instants, oldest first) and returns plain rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# Store purchases giving access at each day's instant, by entitlement and store: for each
# customer and entitlement the newest change-feed snapshot at that instant, counted when it
# gave access then and its period (or grace period) had not ended by the instant. One scan of
# the feed per day: fine for the console's 30 days, the feed's index keeps it bounded.
ACTIVE_BY_DAY = """
SELECT d.day, s.entitlement, s.v->>'store' AS store, count(*) AS active
FROM unnest($1::timestamptz[]) AS d(day)
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (ce.app_user_id, x.key) x.key AS entitlement, x.value AS v
    FROM customer_events ce CROSS JOIN LATERAL jsonb_each(ce.entitlements) AS x(key, value)
    WHERE ce.created_at <= d.day
    ORDER BY ce.app_user_id, x.key, ce.id DESC
) s
WHERE (s.v->>'active')::boolean AND s.v->>'store' <> 'promotional'
  AND CASE WHEN s.v->>'status' = 'grace_period'
           THEN (s.v->>'grace_period_expires_at')::timestamptz > d.day
           ELSE s.v->>'expires_at' IS NULL OR (s.v->>'expires_at')::timestamptz > d.day
      END
GROUP BY d.day, s.entitlement, s.v->>'store'
"""
# Transitions between consecutive snapshots of one customer's entitlement in the change feed.
TRANSITIONS_BY_DAY = """
WITH snapshots AS (
    SELECT ce.created_at, x.value->>'period_type' AS pt, x.value->>'status' AS st,
           x.value->>'store' AS store,
           lag(x.value->>'period_type') OVER w AS prev_pt,
           lag(x.value->>'status') OVER w AS prev_st
    FROM customer_events ce CROSS JOIN LATERAL jsonb_each(ce.entitlements) AS x(key, value)
    WHERE ce.created_at <= $2
    WINDOW w AS (PARTITION BY ce.app_user_id, x.key ORDER BY ce.sequence)
)
SELECT date_trunc('day', created_at, 'UTC') AS day,
       count(*) FILTER (WHERE pt = 'trial' AND prev_pt IS DISTINCT FROM 'trial') AS trials,
       count(*) FILTER (
           WHERE prev_pt = 'trial' AND pt IN ('intro', 'normal') AND st = 'active'
       ) AS conversions,
       count(*) FILTER (
           WHERE st = 'revoked' AND prev_st IS DISTINCT FROM 'revoked' AND store <> 'promotional'
       ) AS refunds,
       count(*) FILTER (
           WHERE st IN ('grace_period', 'billing_retry', 'on_hold')
             AND (prev_st IS NULL OR prev_st NOT IN ('grace_period', 'billing_retry', 'on_hold'))
       ) AS billing_issues
FROM snapshots
WHERE created_at >= $1
GROUP BY 1
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


async def active_by_day(conn: asyncpg.Connection, days: list[datetime]) -> list[dict[str, Any]]:
    """Store purchases giving access at each of `days`: (day, entitlement, store, active)."""
    return [dict(r) for r in await conn.fetch(ACTIVE_BY_DAY, days)]


async def transitions_by_day(
    conn: asyncpg.Connection, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per day from `since` to `until`: trial starts, conversions, refunds and billing issues
    seen in the change feed."""
    return [dict(r) for r in await conn.fetch(TRANSITIONS_BY_DAY, since, until)]


async def latency_by_day(
    conn: asyncpg.Connection, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per day and store from `since` to `until`: the median seconds from a pushed
    notification's store time to its arrival, and how many there were."""
    return [dict(r) for r in await conn.fetch(LATENCY_BY_DAY, since, until)]
