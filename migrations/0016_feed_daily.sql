-- The business page's daily series without reading the change feed (issue 22 point 5).
-- feed_daily holds, per UTC day, entitlement and store, what the change feed's snapshots
-- changed that day: `active_change`, the change in the number of customers whose snapshot of
-- that entitlement gives access through a store purchase (+1 on the day a snapshot starts
-- giving access, -1 on the day it stops: its period or grace period ends, or the customer's
-- next snapshot replaces it; active at the end of a day = the sum of changes up to it), and
-- the transitions between a customer's consecutive snapshots: trial starts, conversions,
-- refunds, billing issues. storage/purchases.record_changes adds each event's changes in the
-- transaction that appends it (storage/console_metrics.py computes them), so the page reads
-- a few rows a day whatever the size of the history.
CREATE TABLE feed_daily (
    day date NOT NULL,
    entitlement text NOT NULL,
    store text NOT NULL,
    active_change bigint NOT NULL DEFAULT 0,
    trials bigint NOT NULL DEFAULT 0,
    conversions bigint NOT NULL DEFAULT 0,
    refunds bigint NOT NULL DEFAULT 0,
    billing_issues bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, entitlement, store)
);

-- The feed so far, read once: each snapshot counts from its event until its end or the
-- customer's next event; transitions compare it with the customer's previous event.
WITH events AS (
    SELECT created_at AS at, entitlements AS snap,
           lag(entitlements) OVER w AS prev_snap,
           lead(created_at) OVER w AS next_at
    FROM customer_events
    WINDOW w AS (PARTITION BY app_user_id ORDER BY sequence)
),
snapshots AS (
    SELECT e.at, e.next_at, x.key AS entitlement, x.value->>'store' AS store,
           x.value->>'period_type' AS pt, x.value->>'status' AS st,
           e.prev_snap->x.key->>'period_type' AS prev_pt,
           e.prev_snap->x.key->>'status' AS prev_st,
           (x.value->>'active')::boolean AS active,
           CASE WHEN x.value->>'status' = 'grace_period'
                THEN (x.value->>'grace_period_expires_at')::timestamptz
                ELSE (x.value->>'expires_at')::timestamptz
           END AS ends,
           x.value->>'status' = 'grace_period'
               AND x.value->>'grace_period_expires_at' IS NULL AS open_grace
    FROM events e CROSS JOIN LATERAL jsonb_each(e.snap) AS x(key, value)
),
counted AS (
    SELECT *, coalesce(active, false) AND store <> 'promotional' AND NOT open_grace
              AND (ends IS NULL OR ends > at) AS gives_access
    FROM snapshots
),
changes AS (
    SELECT (at AT TIME ZONE 'UTC')::date AS day, entitlement, store,
           CASE WHEN gives_access THEN 1 ELSE 0 END AS active_change,
           CASE WHEN pt = 'trial' AND prev_pt IS DISTINCT FROM 'trial' THEN 1 ELSE 0 END AS trials,
           CASE WHEN prev_pt = 'trial' AND pt IN ('intro', 'normal') AND st = 'active'
                THEN 1 ELSE 0 END AS conversions,
           CASE WHEN st = 'revoked' AND prev_st IS DISTINCT FROM 'revoked'
                     AND store <> 'promotional' THEN 1 ELSE 0 END AS refunds,
           CASE WHEN st IN ('grace_period', 'billing_retry', 'on_hold')
                     AND (prev_st IS NULL
                          OR prev_st NOT IN ('grace_period', 'billing_retry', 'on_hold'))
                THEN 1 ELSE 0 END AS billing_issues
    FROM counted
    UNION ALL
    SELECT (least(ends, next_at) AT TIME ZONE 'UTC')::date, entitlement, store, -1, 0, 0, 0, 0
    FROM counted
    WHERE gives_access AND least(ends, next_at) IS NOT NULL
)
INSERT INTO feed_daily (day, entitlement, store, active_change, trials, conversions, refunds,
    billing_issues)
SELECT day, entitlement, store, sum(active_change), sum(trials), sum(conversions), sum(refunds),
       sum(billing_issues)
FROM changes
GROUP BY day, entitlement, store
HAVING sum(active_change) <> 0 OR sum(trials) <> 0 OR sum(conversions) <> 0
    OR sum(refunds) <> 0 OR sum(billing_issues) <> 0;

-- What is active now, counted over rows that grow with active customers, not with history:
-- trials running (their period or grace period not over) and grants not ended.
CREATE INDEX purchases_running_trials ON purchases ((greatest(expires_at, grace_period_expires_at)))
    WHERE period_type = 'trial' AND status IN ('active', 'grace_period') AND NOT superseded;
CREATE INDEX grants_open ON grants (expires_at) WHERE ended_at IS NULL;
-- The latency chart reads the journal's last 30 days, payloads pruned or not.
CREATE INDEX store_notifications_received_at ON store_notifications (received_at);
