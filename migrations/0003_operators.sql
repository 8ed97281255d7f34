-- Operators and customers: the audit trail of every operator action, and the mark an
-- erasure leaves on the pseudonymous customer that keeps what accounting must keep.

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    actor        text NOT NULL,            -- API key name, or "user:<app_user_id>"
    action       text NOT NULL,            -- grant, end_grants, suspend, unsuspend, alias, transfer, export, erase
    app_user_id  text NOT NULL,            -- the customer acted on (a pseudonym after erasure)
    request_id   text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_user_idx ON audit_log (app_user_id, id);

-- Set on the pseudonymous customer an erasure leaves behind (purchases kept for accounting).
ALTER TABLE customers ADD COLUMN erased_at timestamptz;
