"""Bulk seeding of the scale harness (bench/scale.py): clones of real rows, through COPY.

The templates are what the real service wrote for a few customers whose store messages it
ingested over HTTP (their customer row, purchases, owners, journal entries, change-feed
events, charges, Play acknowledgements). Clone k of template t is every one of t's rows
with its ids made unique (the template's ids, wherever they occur in a row's text: columns
and the JSON of state, snapshot and store reads, get the suffix `.k`) and its times moved
back by k's age, spread evenly over `--years`. The rows keep their real shapes and sizes;
only clones in the newest `payload_window` journal entries keep their raw payload (at
real size: the template's own), the rest are pruned as retention leaves them (payload and
store reads NULL, `payload_pruned_at` set). Indexes of the cloned tables are dropped
before the load and built again after it (as pg_restore does); constraints stay checked
because the indexes behind them are rebuilt and the foreign keys validated again.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

# Per table: the key the template's rows are found by, and the time columns moved per
# clone (each `+ age`; NULL stays NULL).
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "customers": ("app_user_id = ANY($1)", ("created_at", "updated_at")),
    "purchases": (
        "app_user_id = ANY($1)",
        (
            "expires_at",
            "grace_period_expires_at",
            "purchased_at",
            "unsubscribe_detected_at",
            "billing_issue_detected_at",
            "revoked_at",
            "state_updated_at",
            "linked_at",
            "created_at",
            "updated_at",
        ),
    ),
    "purchase_owners": ("app_user_id = ANY($1)", ("purchase_created_at",)),
    "customer_events": ("app_user_id = ANY($1)", ("created_at",)),
    "store_notifications": (
        "purchase_ids && $2",
        ("received_at", "signed_at", "payload_pruned_at"),
    ),
    "charges": ("purchase_id = ANY($2)", ("charged_at", "period_end", "refunded_at", "created_at")),
    "play_acknowledgements": (
        "purchase_token = ANY($2)",
        ("next_attempt_at", "acknowledged_at", "created_at", "updated_at"),
    ),
}
# Columns never copied: ids the database gives (serials), and per-row uniques made here.
SKIPPED = {"id"}
EVENT_ID = "event_id"  # customer_events: a fresh UUID per clone row


@dataclass
class Template:
    """One real customer's rows, per table: (columns, rows as tab-separated COPY text
    fields, with the time columns moved to the end)."""

    user: str
    purchases: list[str]
    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)  # ids to make unique, longest first


async def columns_of(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [r["column_name"] for r in rows if r["column_name"] not in SKIPPED]


async def copy_text(conn: asyncpg.Connection, query: str, *args: object) -> list[list[str]]:
    out = io.BytesIO()
    await conn.copy_from_query(query, *args, output=out, format="text")
    text = out.getvalue().decode()
    return [line.split("\t") for line in text.splitlines() if line]


async def templates(conn: asyncpg.Connection, users: Sequence[str]) -> tuple[dict, list[Template]]:
    """The columns per table (time columns last) and one Template per customer."""
    layout: dict[str, tuple[list[str], list[str]]] = {}
    for table, (_, times) in TABLES.items():
        cols = await columns_of(conn, table)
        plain = [c for c in cols if c not in times]
        layout[table] = (plain, [c for c in times if c in cols])
    found = []
    for user in users:
        purchases = [
            r["purchase_id"]
            for r in await conn.fetch(
                "SELECT purchase_id FROM purchases WHERE app_user_id = $1", user
            )
        ]
        template = Template(user, purchases)
        for table, (where, _) in TABLES.items():
            plain, times = layout[table]
            names = ", ".join(f'"{c}"' for c in plain + times)
            query = f"SELECT {names} FROM {table} WHERE {where.replace('$2', '$2::text[]')}"
            if "$2" not in where:
                query = query.replace("$1", "$1::text[]")
                template.rows[table] = await copy_text(conn, query, [user])
            elif "$1" not in where:
                query = query.replace("$2", "$1")
                template.rows[table] = await copy_text(conn, query, purchases)
        messages = [
            r["message_id"]
            for r in await conn.fetch(
                "SELECT message_id FROM store_notifications WHERE purchase_ids && $1::text[]",
                purchases,
            )
        ]
        template.tokens = sorted({user, *purchases, *messages}, key=len, reverse=True)
        found.append(template)
    return layout, found


@dataclass
class Plan:
    """What to seed: `customers` clones of the templates, the newest `payload_window`
    journal entries with payloads, ages spread over `years` back from `now`."""

    customers: int
    payload_window: int
    now: datetime
    years: float = 1.0
    prefix: str = "scale-u-"


USER_MARK, ID_MARK = "\x01", "\x02"


def _compiled(t: Template, table: str, layout: dict) -> list[tuple[str, str, list]]:
    """Per template row: its text with the customer id replaced by USER_MARK and every other
    id followed by ID_MARK (the clone's suffix goes there), the same text pruned (payload and
    store reads NULL) and its time values parsed."""
    plain, _ = layout[table]
    out = []
    for r in t.rows[table]:
        fields = r[: len(plain)]
        if table == "customer_events":
            # The clone's number goes in the first two groups (clone_lines), the sequence last.
            sequence = int(fields[plain.index("sequence")])
            fields[plain.index(EVENT_ID)] = f"%08x-%04x-4000-8000-{sequence:012x}"
        line = "\t".join(fields).replace(t.user, USER_MARK)
        for token in t.tokens:
            if token != t.user:
                line = line.replace(token, token + ID_MARK)
        pruned = line
        if table == "store_notifications":
            cut = fields[:]
            cut[plain.index("payload")] = cut[plain.index("reads")] = r"\N"
            pruned = "\t".join(cut).replace(t.user, USER_MARK)
            for token in t.tokens:
                if token != t.user:
                    pruned = pruned.replace(token, token + ID_MARK)
        times = [None if v == r"\N" else datetime.fromisoformat(v) for v in r[len(plain) :]]
        out.append((line, pruned, times))
    return out


def clone_lines(
    table: str, layout: dict, templates_: Sequence[Template], plan: Plan, part: int, parts: int
) -> Iterator[bytes]:
    """COPY text lines of `table` for the clones k ≡ part (mod parts)."""
    _, times = layout[table]
    pruned_at = times.index("payload_pruned_at") if table == "store_notifications" else -1
    pruned_value = (plan.now - timedelta(days=1)).isoformat()
    compiled = [_compiled(t, table, layout) for t in templates_]
    span = timedelta(days=365 * plan.years)
    entries_per = max(1, len(templates_[0].rows["store_notifications"]))
    n_templates = len(templates_)
    buffer: list[str] = []
    for k in range(part, plan.customers, parts):
        age = span * (k / plan.customers) + timedelta(minutes=10)
        user, suffix = f"{plan.prefix}{k}", f".{k}"
        with_payload = k * entries_per < plan.payload_window
        for line, pruned, values in compiled[k % n_templates]:
            text = (line if with_payload else pruned).replace(USER_MARK, user)
            text = text.replace(ID_MARK, suffix)
            if table == "customer_events":
                text = text.replace("%08x-%04x", f"{k & 0xFFFFFFFF:08x}-{k >> 32:04x}", 1)
            shifted = [r"\N" if v is None else (v - age).isoformat() for v in values]
            if pruned_at >= 0 and not with_payload:
                shifted[pruned_at] = pruned_value
            buffer.append(text + "\t" + "\t".join(shifted) if shifted else text)
        if len(buffer) >= 2000:
            yield ("\n".join(buffer) + "\n").encode()
            buffer = []
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


class _Reader:
    """A file-like view of an iterator of byte chunks, for asyncpg's COPY FROM."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self._chunks:
            yield chunk


async def load_table(
    url: str,
    table: str,
    layout: dict,
    templates_: Sequence[Template],
    plan: Plan,
    part: int,
    parts: int,
) -> int:
    plain, times = layout[table]
    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        await conn.execute("SET synchronous_commit = off")
        source = _Reader(clone_lines(table, layout, templates_, plan, part, parts))
        status = await conn.copy_to_table(
            table, source=source, columns=plain + times, format="text"
        )
        return int(status.split()[-1])
    finally:
        await conn.close()


async def indexes_of(conn: asyncpg.Connection, tables: Sequence[str]) -> list[tuple[str, str, str]]:
    """(table, index name, CREATE statement) of the tables' indexes that back no constraint."""
    rows = await conn.fetch(
        """
        SELECT t.relname AS table_name, i.relname AS index_name, pg_get_indexdef(i.oid) AS def
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        """,
        list(tables),
    )
    return [(r["table_name"], r["index_name"], r["def"]) for r in rows]


async def constraints_of(
    conn: asyncpg.Connection, tables: Sequence[str]
) -> list[tuple[str, str, str, str]]:
    """(table, constraint name, kind, definition) of the tables' primary, unique and
    foreign keys, and those of other tables that reference them."""
    rows = await conn.fetch(
        """
        SELECT t.relname AS table_name, c.conname, c.contype::text AS contype,
               pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        LEFT JOIN pg_class f ON f.oid = c.confrelid
        WHERE c.contype IN ('p', 'u', 'f')
          AND (t.relname = ANY($1::text[]) OR f.relname = ANY($1::text[]))
        ORDER BY c.contype = 'f', t.relname
        """,
        list(tables),
    )
    return [(r["table_name"], r["conname"], r["contype"], r["def"]) for r in rows]


async def seed(
    url: str,
    templates_: Sequence[Template],
    layout: dict,
    plan: Plan,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """Clone the templates `plan.customers` times into the database at `url`; seconds per
    phase."""
    timings: dict[str, float] = {}
    tables = list(TABLES)
    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        indexes = await indexes_of(conn, tables)
        constraints = await constraints_of(conn, tables)
        started = time.perf_counter()
        for table, name, kind, _ in reversed(constraints):
            if kind == "f":
                await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for table, name, kind, _ in constraints:
            if kind != "f":
                await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for _, name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        timings["drop"] = time.perf_counter() - started
    finally:
        await conn.close()

    started = time.perf_counter()
    parts = 2
    for table in tables:
        t0 = time.perf_counter()
        counts = await asyncio.gather(
            *(load_table(url, table, layout, templates_, plan, p, parts) for p in range(parts))
        )
        say(f"  {table}: {sum(counts):,} rows in {time.perf_counter() - t0:.0f} s")
    timings["copy"] = time.perf_counter() - started

    conn = await asyncpg.connect(url, command_timeout=None)
    try:
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        for table, name, kind, definition in constraints:
            if kind != "f":
                await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, _, create in indexes:
            await conn.execute(create)
        for table, name, kind, definition in constraints:
            if kind == "f":
                await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        timings["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("customer_events", "store_notifications", "purchases"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        timings["vacuum"] = time.perf_counter() - started
    finally:
        await conn.close()
    return timings


def utcnow() -> datetime:
    return datetime.now(UTC)
