-- `receiptd reconcile apple|google`: one row per run, so that an interrupted run resumes
-- where it stopped (with the same arguments) and every run leaves its report behind.

CREATE TABLE reconcile_runs (
    id           bigserial PRIMARY KEY,
    store        text NOT NULL CHECK (store IN ('app_store', 'play_store')),
    arguments    jsonb NOT NULL,          -- as given: a run resumes only with the same ones
    since        timestamptz,             -- the window asked of the store; NULL: as far back
                                          -- as the store keeps
    until        timestamptz NOT NULL,    -- fixed at the start, so a resumed run asks the same
    -- The last item completed: {"step": "list:<listing>" | "reread", "cursor": the page's
    -- store cursor or the last purchase row id, "done": items completed on that page}.
    position     jsonb NOT NULL DEFAULT '{}',
    checked      integer NOT NULL DEFAULT 0,
    missing      integer NOT NULL DEFAULT 0,
    corrected    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('finished', 'abandoned'))
);
-- At most one open (unfinished) run per store.
CREATE UNIQUE INDEX reconcile_runs_open_idx ON reconcile_runs (store) WHERE finished_at IS NULL;
CREATE INDEX reconcile_runs_store_idx ON reconcile_runs (store, id);
