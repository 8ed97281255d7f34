-- The app each journal entry is about (issue 20), for the console's journal filter: the
-- notification's bundle id or package name, a submission's or statement's purchase app.
-- Entries (and purchases) stored before name none: the service fills them at start-up when
-- the store has one configured app; the partial indexes keep that check cheap once done.
ALTER TABLE store_notifications ADD COLUMN app text;
CREATE INDEX store_notifications_app ON store_notifications (app, id) WHERE app IS NOT NULL;
CREATE INDEX store_notifications_without_app ON store_notifications (store) WHERE app IS NULL;
CREATE INDEX purchases_without_app ON purchases (store) WHERE app IS NULL;
