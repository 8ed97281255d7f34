-- What a notification weighs (issue 24 point 3; docs/capacity.md has the measurements).
--
-- The raw store data of the journal (`payload`, the body as received; `reads`, the store API
-- answers kept with it) is compressed with lz4 where the server has it: pglz gives up on an
-- Apple body (no repeat in its first KiB of base64), so it is stored whole, while lz4 finds
-- the x5c certificate chains repeated inside it (about a quarter smaller). Only the method
-- changes: the stored text is byte for byte the same (replay re-verifies the exact JWS), values
-- written before keep their method, and nothing is rewritten (no table lock held for long).
-- A server built without lz4 (pgserver's, `pg_config --configure` lacks --with-lz4) refuses
-- `SET COMPRESSION lz4`, so it is asked first and keeps pglz; `SHOW default_toast_compression`
-- and the server's build decide nothing else.
DO $$
BEGIN
    IF (SELECT 'lz4' = ANY(enumvals) FROM pg_settings
        WHERE name = 'default_toast_compression') THEN
        ALTER TABLE store_notifications
            ALTER COLUMN payload SET COMPRESSION lz4,
            ALTER COLUMN reads SET COMPRESSION lz4;
    END IF;
END
$$;

-- No statement can use purchases_app (migrations/0010): its predicate `app IS NOT NULL` is
-- implied only by a condition on purchases.app, and no statement of storage/ has one (they
-- write the column, select it, or look for `app IS NULL`, which purchases_without_app serves).
-- Every purchase write maintains it.
DROP INDEX purchases_app;
