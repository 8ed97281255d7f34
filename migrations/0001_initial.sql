-- receiptd schema: customers, store purchases with their latest state, the raw notification
-- journal (inbox), promotional grants, and the per-customer change feed (outbox).

CREATE TABLE customers (
    app_user_id     text PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    suspended_at    timestamptz,
    -- last change-feed sequence written for this customer (grows by one per event)
    event_sequence  bigint NOT NULL DEFAULT 0,
    -- entitlement snapshot of the last event; a write emits an event only when it changes
    snapshot        jsonb
);

-- Other ids (anonymous ids, old ids) that resolve to a customer.
CREATE TABLE customer_aliases (
    alias        text PRIMARY KEY,
    app_user_id  text NOT NULL REFERENCES customers (app_user_id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_aliases_user_idx ON customer_aliases (app_user_id);

-- One row per store purchase: Apple original transaction / Google purchase token.
-- The columns are the derived view (read path, operations); `state` is the full
-- PurchaseState the pure state machine folds statements into.
CREATE TABLE purchases (
    id                         bigserial PRIMARY KEY,
    store                      text NOT NULL CHECK (store IN ('app_store', 'play_store')),
    purchase_id                text NOT NULL,
    app_user_id                text REFERENCES customers (app_user_id) ON DELETE SET NULL,
    product_id                 text NOT NULL,
    kind                       text NOT NULL,
    status                     text NOT NULL,
    period_type                text NOT NULL,
    will_renew                 boolean NOT NULL,
    expires_at                 timestamptz,
    grace_period_expires_at    timestamptz,
    purchased_at               timestamptz,
    is_sandbox                 boolean NOT NULL,
    unsubscribe_detected_at    timestamptz,
    billing_issue_detected_at  timestamptz,
    revoked_at                 timestamptz,
    ownership                  text NOT NULL DEFAULT 'purchased',
    superseded                 boolean NOT NULL DEFAULT false,
    state                      jsonb NOT NULL,
    state_updated_at           timestamptz NOT NULL,
    linked_at                  timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store, purchase_id)
);
-- Read path: all purchases of a customer.
CREATE INDEX purchases_user_idx ON purchases (app_user_id) WHERE app_user_id IS NOT NULL;
-- Reconciliation: subscriptions whose period ends soon.
CREATE INDEX purchases_open_expiry_idx ON purchases (expires_at)
    WHERE status IN ('active', 'grace_period', 'billing_retry');

-- The raw journal and inbox: every store notification as received, once per store message
-- id (Apple notificationUUID, Pub/Sub messageId), with what processing made of it.
CREATE TABLE store_notifications (
    id                 bigserial PRIMARY KEY,
    store              text NOT NULL CHECK (store IN ('app_store', 'play_store')),
    message_id         text NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    notification_type  text,
    subtype            text,
    signed_at          timestamptz,
    purchase_id        text,
    result             text NOT NULL CHECK (result IN ('processed', 'ignored', 'rejected')),
    reason             text,
    payload            text,           -- the body as received; NULL once pruned
    payload_pruned_at  timestamptz,
    UNIQUE (store, message_id)
);
CREATE INDEX store_notifications_purchase_idx ON store_notifications (store, purchase_id);
CREATE INDEX store_notifications_received_idx ON store_notifications (received_at)
    WHERE payload IS NOT NULL;

-- Promotional grants by operators.
CREATE TABLE grants (
    id           bigserial PRIMARY KEY,
    app_user_id  text NOT NULL REFERENCES customers (app_user_id) ON DELETE CASCADE,
    entitlement  text NOT NULL,
    starts_at    timestamptz NOT NULL,
    expires_at   timestamptz,           -- NULL: lifetime
    ended_at     timestamptz,           -- lifted by an operator
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grants_user_idx ON grants (app_user_id, entitlement);

-- The change feed / transactional outbox: one row per change of a customer's
-- entitlements or suspension, written in the same transaction as the change. Rows are
-- inserted under a transaction-scoped advisory lock, so `id` order is commit order.
CREATE TABLE customer_events (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    app_user_id  text NOT NULL,          -- no FK: the feed records erasure too
    sequence     bigint NOT NULL,
    type         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    entitlements jsonb NOT NULL,
    UNIQUE (app_user_id, sequence)
);
