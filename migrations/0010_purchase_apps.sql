-- The app each purchase was bought in (issue 20: several apps in one deployment): Apple's
-- bundle id, Google's package name. Written with every purchase write, from the state's
-- `app` (the first statement naming it decides). NULL for purchases stored before: the
-- service fills them at start-up when each store has one configured app (that app), and
-- `receiptd replay --fix` re-derives them from the journal otherwise.
ALTER TABLE purchases ADD COLUMN app text;
CREATE INDEX purchases_app ON purchases (app) WHERE app IS NOT NULL;
