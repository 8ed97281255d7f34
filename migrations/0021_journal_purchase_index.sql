-- The journal's index of the purchase an entry names, purchase id first (it was (store,
-- purchase_id), migrations/0001). With the store first, a join that also looks a purchase up
-- in `purchase_ids` (GIN, whose estimate for a joined value is a guess) was planned as a
-- BitmapAnd of that GIN look-up with `store = p.store` on this index: every entry of the
-- store read to intersect with two (the console's customer page: 434 ms at 20M entries,
-- 4 ms at 2,000; bench/scale.py). Purchase id first, the index serves the same look-ups by
-- (store, purchase id) and none by store alone.
CREATE INDEX store_notifications_purchase_store_idx ON store_notifications (purchase_id, store);
DROP INDEX store_notifications_purchase_idx;
