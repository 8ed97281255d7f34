-- Money (issue 22). The price of each purchase's current period as the store states it
-- (exact decimal text, as the contract writes it; NULL where the store states none).
ALTER TABLE purchases ADD COLUMN price_amount text, ADD COLUMN price_currency text;

-- Every charge (an Apple paid transaction, a Play paid period told apart by its order id)
-- and its refund, at the store's times. Inserted in the ingest transaction of the statement
-- that shows it: (store, purchase_id, charge_id) is the key, so duplicates, late and
-- shuffled deliveries and replays count each charge once.
CREATE TABLE charges (
    store text NOT NULL,
    purchase_id text NOT NULL,
    charge_id text NOT NULL,
    product_id text NOT NULL,
    app text,
    is_sandbox boolean NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL,
    charged_at timestamptz NOT NULL,
    period_end timestamptz,
    months numeric,
    refunded_at timestamptz,
    refunded_amount numeric,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (store, purchase_id, charge_id)
);

-- Daily rollups, updated in the same transaction as the charge or refund they count, so
-- that /v1/revenue and the console's business page cost the same at any history size.
-- revenue_daily: per day of the store's charge (gross, charges) or refund (refunded,
-- refunds). mrr_daily: the change of monthly recurring revenue on each day (a paid period
-- adds price / months from its start and takes it away at its end or refund); MRR as of a
-- day is the sum of the changes up to it.
CREATE TABLE revenue_daily (
    day date NOT NULL,
    store text NOT NULL,
    currency text NOT NULL,
    is_sandbox boolean NOT NULL,
    gross numeric NOT NULL DEFAULT 0,
    refunded numeric NOT NULL DEFAULT 0,
    charges bigint NOT NULL DEFAULT 0,
    refunds bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, store, currency, is_sandbox)
);
CREATE TABLE mrr_daily (
    day date NOT NULL,
    store text NOT NULL,
    currency text NOT NULL,
    is_sandbox boolean NOT NULL,
    amount numeric NOT NULL DEFAULT 0,
    subscriptions bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, store, currency, is_sandbox)
);
