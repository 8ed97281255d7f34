-- Refund requests (issue 21): Apple's CONSUMPTION_REQUEST asks for consumption information
-- within 12 hours. One row per request (a repeat is a new notification, a new row); the
-- sending loop claims due pending rows with a lease (claimed_until) so that each request is
-- sent once across workers and replicas, and a crash mid-send is retried after the lease.
CREATE TABLE refund_requests (
    id uuid PRIMARY KEY,
    store text NOT NULL,
    notification_id text NOT NULL,
    app_user_id text,
    purchase_id text NOT NULL,
    transaction_id text NOT NULL,
    product_id text NOT NULL,
    app text,
    environment text NOT NULL,
    reason text,
    consumption_percentage integer,
    requested_at timestamptz NOT NULL,
    deadline timestamptz NOT NULL,
    preference text,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_until timestamptz,
    sent_at timestamptz,
    sent_body jsonb,
    last_error text,
    decided_at timestamptz,
    created_at timestamptz NOT NULL,
    UNIQUE (store, notification_id)
);
CREATE INDEX refund_requests_due ON refund_requests (next_attempt_at) WHERE status = 'pending';
CREATE INDEX refund_requests_purchase ON refund_requests (store, purchase_id);
CREATE INDEX refund_requests_customer ON refund_requests (app_user_id);
CREATE INDEX refund_requests_requested ON refund_requests (requested_at DESC, id);

-- A customer's consent to share consumption data with the store (PUT .../consent).
CREATE TABLE customer_consents (
    app_user_id text PRIMARY KEY,
    consumption_data boolean NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Support's actions on the stores (POST /v1/customers/{id}/extend and /revoke, `receiptd
-- extend`): what was asked of which purchase and what the store answered. The purchase's
-- state changes only when the store confirms (a notification or the re-read that follows).
CREATE TABLE store_actions (
    id uuid PRIMARY KEY,
    app_user_id text,
    store text NOT NULL,
    purchase_id text NOT NULL,
    action text NOT NULL,
    request jsonb NOT NULL,
    status text NOT NULL,
    detail text NOT NULL,
    answer jsonb NOT NULL,
    actor text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX store_actions_customer ON store_actions (app_user_id, created_at);
CREATE INDEX store_actions_purchase ON store_actions (store, purchase_id, action, created_at);
