"""SQL of `receiptd replay --jobs N` (migrations/0017): the open run and its arguments, each
part's position and counts saved with its page's report lines and shared journal entries,
and the end of a run. Functions take their connection."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

OPEN_RUN = """
SELECT id, arguments FROM replay_runs WHERE status = 'running' FOR UPDATE
"""
END_RUN = """
UPDATE replay_runs SET status = $2, finished_at = $3, updated_at = $3 WHERE id = $1
"""
START_RUN = """
INSERT INTO replay_runs (arguments, started_at, updated_at) VALUES ($1::jsonb, $2, $2)
RETURNING id
"""
START_PARTS = """
INSERT INTO replay_parts (run_id, part, updated_at)
SELECT $1, part, $3 FROM generate_series(0, $2 - 1) AS part
"""
PARTS = """
SELECT part, position, counts, finished, pages FROM replay_parts WHERE run_id = $1 ORDER BY part
"""
SAVE_PART = """
UPDATE replay_parts
SET position = $3::jsonb, counts = $4::jsonb, finished = $5, pages = pages + 1, updated_at = $6
WHERE run_id = $1 AND part = $2
"""
SAVE_LINES = """
INSERT INTO replay_lines (run_id, line) SELECT $1, unnest($2::text[])
"""
SAVE_SHARED = """
INSERT INTO replay_shared_entries (run_id, entry_id) SELECT $1, unnest($2::bigint[])
ON CONFLICT DO NOTHING
"""
LINES = "SELECT line FROM replay_lines WHERE run_id = $1 ORDER BY id"
COUNT_SHARED = "SELECT count(*) FROM replay_shared_entries WHERE run_id = $1"
TOUCH_RUN = "UPDATE replay_runs SET updated_at = $2 WHERE id = $1"


@dataclass(frozen=True, slots=True)
class OpenRun:
    """The run that has not ended: its id and the arguments it was started with."""

    id: int
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PartState:
    """One part of a run as last saved."""

    part: int
    position: dict[str, Any]
    counts: dict[str, int]
    finished: bool
    pages: int


async def open_run(conn: asyncpg.Connection) -> OpenRun | None:
    """The run that has not ended, locked for the transaction (None: none)."""
    row = await conn.fetchrow(OPEN_RUN)
    if row is None:
        return None
    return OpenRun(row["id"], _json(row["arguments"]))


async def start_run(
    conn: asyncpg.Connection, arguments: Mapping[str, Any], jobs: int, now: datetime
) -> int:
    """A new run of `jobs` parts, none begun; its id."""
    run_id: int = await conn.fetchval(START_RUN, json.dumps(arguments, sort_keys=True), now)
    await conn.execute(START_PARTS, run_id, jobs, now)
    return run_id


async def end_run(conn: asyncpg.Connection, run_id: int, status: str, now: datetime) -> None:
    """Mark a run `finished` or `abandoned`."""
    await conn.execute(END_RUN, run_id, status, now)


async def parts(conn: asyncpg.Connection, run_id: int) -> list[PartState]:
    """Every part of a run, in order."""
    rows = await conn.fetch(PARTS, run_id)
    return [
        PartState(r["part"], _json(r["position"]), _json(r["counts"]), r["finished"], r["pages"])
        for r in rows
    ]


async def save_part(
    conn: asyncpg.Connection,
    run_id: int,
    part: int,
    *,
    position: Mapping[str, Any],
    counts: Mapping[str, int],
    finished: bool,
    lines: Sequence[str],
    shared: Collection[int],
    now: datetime,
) -> None:
    """Save a part's page in one transaction: its position and counts, the page's report
    lines, the journal entries it re-derived that other pages may re-derive too."""
    async with conn.transaction():
        await conn.execute(
            SAVE_PART,
            run_id,
            part,
            json.dumps(position),
            json.dumps(counts, sort_keys=True),
            finished,
            now,
        )
        if lines:
            await conn.execute(SAVE_LINES, run_id, list(lines))
        if shared:
            await conn.execute(SAVE_SHARED, run_id, sorted(shared))
        await conn.execute(TOUCH_RUN, run_id, now)


async def lines(conn: asyncpg.Connection, run_id: int) -> list[str]:
    """The report lines the run's saved pages gave, in the order saved."""
    return [r["line"] for r in await conn.fetch(LINES, run_id)]


async def count_shared(conn: asyncpg.Connection, run_id: int) -> int:
    """How many distinct shared journal entries the run's parts re-derived."""
    return int(await conn.fetchval(COUNT_SHARED, run_id))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
