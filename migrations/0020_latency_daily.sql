-- The business page's notification latency per settled day (issue 24: a page that costs the
-- same at any traffic). A median does not add up like feed_daily's counts, but a journal
-- entry's received_at is the time its ingest began, so a UTC day that ended more than an hour
-- ago (storage/console_metrics.SETTLED_AFTER) gets no new entries: its median is computed
-- once, on the first page view that needs it, and kept here. A day without notifications is
-- kept as one row with store '' (no median), so it is not computed again.
CREATE TABLE latency_daily (
    day date NOT NULL,
    store text NOT NULL,
    median_seconds double precision,
    notifications bigint NOT NULL,
    PRIMARY KEY (day, store)
);
