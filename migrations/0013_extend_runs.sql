-- `receiptd extend` (issue 21): the same extension for every renewing subscription after an
-- outage. One row per run, with its arguments (a run resumes only with the same ones) and the
-- counts of its last save; one row per thing asked of a store (an Apple mass extension per
-- app, environment and product; a Play deferral per subscription token), so that a resumed
-- run never asks a store twice for the same item.

CREATE TABLE extend_runs (
    id           bigserial PRIMARY KEY,
    arguments    jsonb NOT NULL,          -- {"days", "reason", "product"} as given
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'finished', 'abandoned')),
    -- Per store: {"app_store": {"requested", "confirmed", "refused", "failed", "pending"}, …}
    counts       jsonb NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
-- At most one run that has not ended (an interrupted one is resumed or abandoned).
CREATE UNIQUE INDEX extend_runs_open_idx ON extend_runs (status) WHERE status = 'running';

CREATE TABLE extend_items (
    id              bigserial PRIMARY KEY,  -- the order items are asked in
    run_id          bigint NOT NULL REFERENCES extend_runs (id) ON DELETE CASCADE,
    store           text NOT NULL CHECK (store IN ('app_store', 'play_store')),
    -- Apple: "<app>|<environment>|<product>"; Play: the subscription's purchase token.
    key             text NOT NULL,
    app             text,                   -- bundle id or package name (NULL: the default)
    environment     text,
    product_id      text NOT NULL,
    app_user_id     text,                   -- Play: the purchase's customer, for the audit
    expires_before  timestamptz,            -- Play: the stored expiry when the run planned it
    request_id      text NOT NULL,          -- Apple's requestIdentifier, kept for a resume
    -- pending → sending (asked, no answer yet) → requested → confirmed; or refused, failed
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'requested', 'confirmed',
                                      'refused', 'failed')),
    detail          text NOT NULL DEFAULT '',
    answer          jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL,
    UNIQUE (run_id, store, key)
);
