-- Console sessions bound to their API key itself (issue 18): before, a session was re-checked
-- by the key's name only, so rotating an admin key under the same name left its sessions
-- signed in. key_binding is SHA-256 of a fixed prefix and the key's SHA-256 digest
-- (server/auth.py): it names the key without being the key or the digest a `key_sha256`
-- setting holds. A session is valid only while a configured admin key of that name has this
-- binding. Rows from before this migration have none (NULL) and sign nobody in; NULL stays
-- allowed so that a replica still on the old code can run during a rolling upgrade (its new
-- sessions are refused by the upgraded replicas, which is the safe side).

ALTER TABLE console_sessions ADD COLUMN key_binding bytea;
