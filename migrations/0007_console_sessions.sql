-- The operator console's sign-in sessions (console/session.py). A row per signed-in browser:
-- the cookie carries a random token, the table keeps only its SHA-256, so a copy of the table
-- cannot sign anybody in. Rows are shared by every worker and replica; signing out deletes
-- the row, and expired rows are deleted at the next sign-in.

CREATE TABLE console_sessions (
    token_sha256  bytea PRIMARY KEY,
    key_name      text NOT NULL,          -- the admin API key signed in with (its name only)
    csrf_token    text NOT NULL,          -- the hidden field of every POST form of the session
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
