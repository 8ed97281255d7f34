-- The journal names every purchase, so `receiptd replay` can recreate one whose row is gone
-- (a partial restore, a bad migration, a hand-made DELETE): with its state, and with this,
-- its owner and the time it was first stored. Issue 18, point 5.

-- Who each purchase belongs to, as every ingest decided it: one row per purchase written,
-- in the statement that writes the purchase (so under its row lock: for one purchase, `id`
-- order is commit order and the latest row is the owner now). The journal's payloads never
-- name the submitter (an erasure would miss them); this column does, and is kept naming the
-- current customer: an alias merge moves it to the customer (customer_repository.move_to),
-- an erasure replaces it by the pseudonym (customer_repository.scrub). NULL: no
-- owner. `notification_id`: the journal entry that decided it; NULL for the rows this
-- migration copies from `purchases` (the owners as they stand now, for purchases journaled
-- before). `purchase_created_at`: when the purchase row was first stored (a purchase stored
-- before migration 0005 has submissions the journal does not hold).
CREATE TABLE purchase_owners (
    id                   bigserial,
    store                text NOT NULL CHECK (store IN ('app_store', 'play_store')),
    purchase_id          text NOT NULL,
    app_user_id          text,
    notification_id      bigint,
    purchase_created_at  timestamptz NOT NULL,
    PRIMARY KEY (store, purchase_id, id)
);
-- Merges and erasure rewrite a customer's rows.
CREATE INDEX purchase_owners_user_idx ON purchase_owners (app_user_id)
    WHERE app_user_id IS NOT NULL;

INSERT INTO purchase_owners (store, purchase_id, app_user_id, notification_id, purchase_created_at)
SELECT store, purchase_id, app_user_id, NULL, created_at FROM purchases ORDER BY id;

-- An erasure drops the raw payloads of the customer's purchases (they name the person), so
-- the entries before it can no longer be re-derived. It journals, per purchase, an entry of
-- type ERASURE whose `checkpoint` is the purchase's state JSON at that moment (no personal
-- data: the same JSON `purchases.state` keeps); replay starts the purchase from there.
ALTER TABLE store_notifications ADD COLUMN checkpoint jsonb;
