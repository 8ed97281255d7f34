-- The journal's GIN index of `purchase_ids` is written directly (fastupdate off). With the
-- default, new entries (and every pruned or erased one: an UPDATE writes a new row version)
-- wait in the index's pending list, up to gin_pending_list_limit (4 MB), until a vacuum
-- merges them; every look-up reads the whole list meanwhile. On the 20M-entry scale database
-- after a prune, one purchase's look-up read ~230 pages (11 ms) instead of a few: a replay
-- page of 200 purchases took 2 s, 2.8 ms once the list was merged (bench/scale.py). An entry
-- names one or two purchases, so writing them directly costs ingest a few page updates.
ALTER INDEX store_notifications_purchase_ids_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('store_notifications_purchase_ids_idx'::regclass);
