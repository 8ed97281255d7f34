-- Indexes for the statements that read a large table whole (issue 24 point 2; the plans are
-- checked by tests/integration/test_plans.py on a production-shaped database). Each serves
-- the statement named; none covers history that the statement does not ask for.
--
-- The console's journal page, newest first within rejected, ignored, processed
-- (storage/console.JOURNAL_PAGE's ORDER BY): a page reads its rows, not the whole journal.
CREATE INDEX store_notifications_journal_order ON store_notifications
    ((CASE result WHEN 'rejected' THEN 0 WHEN 'ignored' THEN 1 ELSE 2 END), id DESC);
-- The journal's notification types, the filter's choices (storage/console.JOURNAL_TYPES
-- walks it one distinct type at a time).
CREATE INDEX store_notifications_type ON store_notifications (notification_type)
    WHERE notification_type IS NOT NULL;
-- Refund requests as listed: pending first by deadline, then the newest
-- (storage/refund_requests.listing's ORDER BY), for GET /v1/refund-requests and the console.
CREATE INDEX refund_requests_listing ON refund_requests (
    (status <> 'pending'), (CASE WHEN status = 'pending' THEN deadline END), requested_at DESC, id
);
-- The rows of a Play subscription token, its add-on line items' (`token|product`) too:
-- `receiptd extend` reads the token's latest expiry after each extension
-- (storage/extend_runs.EXPIRY_OF).
CREATE INDEX purchases_play_token ON purchases (split_part(purchase_id, '|', 1))
    WHERE store = 'play_store';
-- A token's pending acknowledgements, claimed right after the ingest that recorded them
-- (storage/play_acknowledgements.CLAIM_FRESH); the unique key leads with kind.
CREATE INDEX play_acknowledgements_token ON play_acknowledgements (purchase_token);
-- The audit rows an erased user wrote themselves (actor `user:<id>`), renamed by the
-- erasure (storage/customers.RENAME_ACTOR).
CREATE INDEX audit_log_actor ON audit_log (actor);
-- An endpoint's deliveries by when they are due: the delivery loop claims the due ones of a
-- backlog (storage/outbox.CLAIM) without reading the deliveries still backing off.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_key, next_attempt_at);
