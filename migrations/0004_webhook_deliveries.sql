-- Outbound webhooks: customer_events is the transactional outbox; these tables track what
-- each configured endpoint has been handed and what it still has to receive.

-- One row per endpoint ever configured, keyed by a hash of its URL (the configuration is
-- the list of endpoints; the key keeps an endpoint's state across restarts and reloads).
CREATE TABLE webhook_endpoints (
    endpoint_key     text PRIMARY KEY,
    -- the last customer_events.id handed to this endpoint (a delivery row exists for every
    -- later-handed event until it is delivered); starts at the end of the feed
    feed_cursor      bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    last_success_at  timestamptz,
    last_error       text,            -- a short cause ("http 500", "timeout"), never a body
    last_error_at    timestamptz
);

-- One row per (endpoint, event) handed and not yet delivered; deleted on a 2xx.
CREATE TABLE webhook_deliveries (
    endpoint_key     text NOT NULL REFERENCES webhook_endpoints (endpoint_key) ON DELETE CASCADE,
    feed_id          bigint NOT NULL REFERENCES customer_events (id) ON DELETE CASCADE,
    handed_at        timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,   -- also the fencing token of a claim
    next_attempt_at  timestamptz NOT NULL,
    leased_until     timestamptz,                  -- an attempt in flight, until then
    last_attempt_at  timestamptz,
    last_error       text,
    PRIMARY KEY (endpoint_key, feed_id)
);
