-- `receiptd replay --jobs N` (issue 24): one row per parallel run and one per part of it, so
-- that an interrupted run resumes (with the same arguments) without re-checking what its
-- parts finished, and its summary and report cover the whole run.

CREATE TABLE replay_runs (
    id           bigserial PRIMARY KEY,
    arguments    jsonb NOT NULL,          -- {"since", "customer", "fix", "jobs"} as given
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'finished', 'abandoned')),
    started_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
-- At most one run that has not ended (an interrupted one is resumed or abandoned).
CREATE UNIQUE INDEX replay_runs_open_idx ON replay_runs (status) WHERE status = 'running';

-- Part `part` of `jobs` checks the purchases of its share: stored rows with id % jobs = part,
-- lost ones by a hash of their purchase id. Saved after every page, with the page's report.
CREATE TABLE replay_parts (
    run_id       bigint NOT NULL REFERENCES replay_runs (id) ON DELETE CASCADE,
    part         integer NOT NULL,
    -- The last page done: {"source": 0 stored | 1 missing | 2 unjournaled, "after": that
    -- source's cursor (a row id, [entry id, purchase id], [store, purchase id]) or null}.
    position     jsonb NOT NULL DEFAULT '{"source": 0, "after": null}',
    -- The part's counts so far (services.replay.Summary's fields).
    counts       jsonb NOT NULL DEFAULT '{}',
    finished     boolean NOT NULL DEFAULT false,
    pages        integer NOT NULL DEFAULT 0,  -- pages checked, resumed ones included once
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, part)
);

-- The report lines of the pages saved, printed again when a run is resumed.
CREATE TABLE replay_lines (
    id           bigserial PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES replay_runs (id) ON DELETE CASCADE,
    line         text NOT NULL
);
CREATE INDEX replay_lines_run_idx ON replay_lines (run_id, id);

-- Journal entries re-derived for purchases of more than one page (several purchases, or
-- another purchase's history): counted once across the parts.
CREATE TABLE replay_shared_entries (
    run_id       bigint NOT NULL REFERENCES replay_runs (id) ON DELETE CASCADE,
    entry_id     bigint NOT NULL,
    PRIMARY KEY (run_id, entry_id)
);
