-- The journal becomes complete enough to re-derive every purchase (`receiptd replay`): each
-- entry keeps the store API answers its processing used, and the purchases its events were
-- applied to. App submissions are journaled too, as entries of type SUBMISSION.

-- {"now": <service-clock time the store was read at>, "reads": [{"call", "request",
-- "answer" | "failure"}, …]}, raw. NULL once pruned or erased together with `payload`, and
-- for entries journaled before this migration (those cannot be re-derived).
ALTER TABLE store_notifications ADD COLUMN reads jsonb;

-- Every purchase the entry's events were applied to (with the one it replaced): how replay
-- finds every entry of a purchase. Older entries name their own purchase.
ALTER TABLE store_notifications ADD COLUMN purchase_ids text[] NOT NULL DEFAULT '{}';
UPDATE store_notifications SET purchase_ids = ARRAY[purchase_id]
WHERE purchase_id IS NOT NULL AND result = 'processed';
CREATE INDEX store_notifications_purchase_ids_idx ON store_notifications USING gin (purchase_ids);
