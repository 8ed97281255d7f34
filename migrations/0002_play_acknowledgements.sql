-- Google Play purchases that still have to be acknowledged (store-protocols B3: an
-- unacknowledged purchase is refunded and revoked by Google after 3 days). A row is written
-- before the purchase's state is committed and deleted once Play confirms the
-- acknowledgement; a background task retries failed ones with exponential backoff.
CREATE TABLE play_acknowledgements (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('subscription', 'product')),
    package_name     text NOT NULL,
    product_id       text NOT NULL,   -- subscriptions: the line item's productId
    purchase_token   text NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,   -- also the lease of an attempt in flight
    last_error       text,
    UNIQUE (kind, package_name, product_id, purchase_token)
);
-- The retry task's scan: rows due now, oldest first.
CREATE INDEX play_acknowledgements_due_idx ON play_acknowledgements (next_attempt_at);
