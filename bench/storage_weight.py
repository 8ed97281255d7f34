"""Storage benchmark: what one Apple and one Google notification weighs in PostgreSQL (issue 24
point 3).

For each store, seeds a fresh embedded PostgreSQL through the real service (`python -m
receiptd serve`): Apple, U subscriptions of E signed notifications each (a test CA the service
trusts); Google, U subscriptions (purchase tokens as long as real ones) of E signed RTDN pushes
each, the fake Play API answering the service's subscriptionsv2.get. Then reads the size of
every table receiptd writes (heap, TOAST, indexes, and each index) and prints bytes per
notification, before and after dropping every raw payload and store read as `receiptd prune`
does (the retention window's effect), the WAL written by each, and the live size after VACUUM
FULL. Also: how the raw payloads are stored (compression method, stored vs. text bytes), how
much of an Apple payload is x5c certificate chains, the raw data's stored bytes under pglz and
lz4 where the server has lz4 (and on the server given by --compression-url; --server-url runs
the service itself on another server), and which indexes no statement of the run used
(`pg_stat_user_indexes.idx_scan = 0`: ingest only, so it proves nothing about other paths).
Bounded: 127.0.0.1 only, temporary directories.

    .venv/bin/python bench/storage_weight.py [--users 1000] [--events 5] [--store both]
        [--compression-url postgresql://...] [--realdata ../shared/realdata/apple]
        [--server-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import string
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from apple_ingest import post_all as post_apple  # bench/ is on sys.path
from apple_ingest import write_config as apple_config
from google_ingest import PACKAGE, PUSH_EMAIL, free_port, wait_ready
from google_ingest import post_all as post_google
from google_ingest import write_config as google_config
from replay import rounds

from simulators.apple_ca import TestCA
from simulators.fake_play import FakePlay
from simulators.google_signer import GoogleTestKeys, push_envelope, subscription_notification
from simulators.play_purchases import subscription_purchase

PURCHASED, RENEWED = 4, 2  # RTDN subscriptionNotification types
TOKEN_LENGTH = 140  # real Play purchase tokens are 120-150 characters

TABLES = """
SELECT c.relname AS name,
       pg_relation_size(c.oid) AS heap,
       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast,
       pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC
"""
INDEXES = """
SELECT s.relname AS table_name, s.indexrelname AS index_name,
       pg_relation_size(s.indexrelid) AS size, s.idx_scan AS scans
FROM pg_stat_user_indexes s ORDER BY s.relname, s.indexrelname
"""
PAYLOADS = """
SELECT count(*) AS n,
       avg(octet_length(payload)) AS text_bytes, avg(pg_column_size(payload)) AS stored_bytes,
       avg(octet_length(reads::text)) AS reads_text, avg(pg_column_size(reads)) AS reads_stored,
       count(*) FILTER (WHERE pg_column_compression(payload) IS NOT NULL) AS compressed,
       string_agg(DISTINCT pg_column_compression(payload), ',') AS methods
FROM store_notifications WHERE payload IS NOT NULL
"""
LZ4_AVAILABLE = """
SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'
"""
# What `receiptd prune` does to an entry past the retention window (storage/journal.py).
PRUNE_ALL = """
UPDATE store_notifications SET payload = NULL, reads = NULL, payload_pruned_at = now()
WHERE payload IS NOT NULL OR reads IS NOT NULL
"""
TOTAL_SIZE = "SELECT pg_total_relation_size($1::regclass)"
SPREAD = (
    "SELECT min(pg_column_size(payload)) AS low, max(pg_column_size(payload)) AS high FROM {table}"
)
WAL_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"  # bytes since 0/0
SMALL = 16 * 1024  # tables smaller than this in all (a page or two each) are summed as "other"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Bytes per notification of each table: (heap, TOAST, indexes)."""

    tables: dict[str, tuple[float, float, float]]
    indexes: dict[str, float]  # "table.index" → bytes per notification

    @property
    def total(self) -> float:
        return sum(sum(t) for t in self.tables.values())

    def column(self, k: int) -> float:
        return sum(t[k] for t in self.tables.values())


async def sizes(conn: asyncpg.Connection, notifications: int) -> Sizes:
    await conn.execute("VACUUM ANALYZE")
    tables = {
        r["name"]: tuple(r[k] / notifications for k in ("heap", "toast", "indexes"))
        for r in await conn.fetch(TABLES)
    }
    indexes = {
        f"{r['table_name']}.{r['index_name']}": r["size"] / notifications
        for r in await conn.fetch(INDEXES)
    }
    return Sizes(tables, indexes)


def print_sizes(title: str, before: Sizes, after: Sizes, notifications: int) -> None:
    print(f"\n{title}: {notifications} notifications, bytes per notification")
    print("| table | heap | TOAST | indexes | after prune: heap | TOAST | indexes |")
    print("|---|---|---|---|---|---|---|")
    other_b, other_a = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for name, b in before.tables.items():
        a = after.tables.get(name, (0.0, 0.0, 0.0))
        if sum(b) * notifications < SMALL and sum(a) * notifications < SMALL:
            other_b = [x + y for x, y in zip(other_b, b, strict=True)]
            other_a = [x + y for x, y in zip(other_a, a, strict=True)]
            continue
        print(f"| `{name}` | " + " | ".join(f"{x:,.0f}" for x in (*b, *a)) + " |")
    print("| other tables | " + " | ".join(f"{x:,.0f}" for x in (*other_b, *other_a)) + " |")
    cols_b = [before.column(k) for k in range(3)]
    cols_a = [after.column(k) for k in range(3)]
    print("| **all** | " + " | ".join(f"{x:,.0f}" for x in (*cols_b, *cols_a)) + " |")
    print(f"total: {before.total:,.0f} bytes per notification; {after.total:,.0f} after prune")
    print("indexes (bytes per notification, before / after prune):")
    for name, size in before.indexes.items():
        if size * notifications >= SMALL:
            print(f"  {name:<60} {size:>6,.0f} / {after.indexes[name]:>6,.0f}")


def print_live(live: Sizes, users: int, notifications: int) -> None:
    """Sizes after VACUUM FULL: live rows only (what a table holds between autovacuums is
    more: an updated row leaves its old version until vacuum makes the space reusable)."""
    print("after VACUUM FULL (live rows only), bytes per notification, or per user (*):")
    for name, t in live.tables.items():
        if sum(t) * notifications < SMALL:
            continue
        per_user = name in ("purchases", "customers")
        scale = notifications / users if per_user else 1
        print(f"  {name + (' *' if per_user else ''):<24} {sum(t) * scale:>7,.0f}")


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def recoded(jws: str, *, keep_x5c: bool) -> str:
    """The compact JWS re-serialised (JSON without spaces), with or without its x5c chains and
    those of the JWS nested in its payload: len(recoded(keep)) - len(recoded(drop)) is what
    the chains take. Not a valid JWS any more, only a measure."""
    header, payload, signature = jws.split(".")
    head = json.loads(b64url_decode(header))
    if not keep_x5c:
        head["x5c"] = []
    body = json.loads(b64url_decode(payload))
    data = body.get("data") if isinstance(body, dict) else body
    if isinstance(data, dict):
        for key in ("signedTransactionInfo", "signedRenewalInfo"):
            if isinstance(data.get(key), str) and data[key].count(".") == 2:
                data[key] = recoded(data[key], keep_x5c=keep_x5c)
    parts = (json.dumps(head, separators=(",", ":")), json.dumps(body, separators=(",", ":")))
    return ".".join((*(b64url(p.encode()) for p in parts), signature))


def x5c_share(payloads: list[str]) -> tuple[float, float] | None:
    """(average bytes of a stored payload, average bytes of it that are x5c chains) for Apple
    bodies (`{"signedPayload": "<JWS>"}`); None when there are none."""
    measured = []
    for text in payloads:
        body = json.loads(text)
        jws = body.get("signedPayload") if isinstance(body, dict) else None
        if not isinstance(jws, str) or jws.count(".") != 2:
            continue
        chains = len(recoded(jws, keep_x5c=True)) - len(recoded(jws, keep_x5c=False))
        measured.append((len(text.encode()), chains))
    if not measured:
        return None
    return (
        sum(m[0] for m in measured) / len(measured),
        sum(m[1] for m in measured) / len(measured),
    )


async def bytes_by_method(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str | None]]
) -> dict[str, float | str]:
    """Bytes per row (heap and TOAST: a compressed value may stay in the row) when the
    journal's raw data, (payload, reads) pairs, is stored alone in a table under each
    compression method the server has (scratch tables, dropped afterwards)."""
    methods = ["pglz", "lz4"] if await conn.fetchval(LZ4_AVAILABLE) else ["pglz"]
    out: dict[str, float | str] = {}
    for method in methods:
        table = f"bench_compression_{method}"
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(
            f"CREATE TABLE {table} (payload text COMPRESSION {method}, reads jsonb COMPRESSION {method})"  # noqa: E501
        )
        try:
            await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2::jsonb)", rows)
            await conn.execute(f"VACUUM ANALYZE {table}")
            out[method] = round(await conn.fetchval(TOTAL_SIZE, table) / len(rows))
            spread = await conn.fetchrow(SPREAD.format(table=table))
            out[f"{method} payload min-max"] = f"{spread['low']}-{spread['high']}"
        finally:
            await conn.execute(f"DROP TABLE {table}")
    return out


async def payload_report(
    conn: asyncpg.Connection,
    compression_url: str | None,
    real: list[str],
    *,
    sample: int = 2000,
) -> None:
    stats = await conn.fetchrow(PAYLOADS)
    default = await conn.fetchval("SHOW default_toast_compression")
    lz4 = await conn.fetchval(LZ4_AVAILABLE)
    text, stored = (stats[k] or 0 for k in ("text_bytes", "stored_bytes"))
    reads_text, reads_stored = (stats[k] or 0 for k in ("reads_text", "reads_stored"))
    print(f"raw payload: {text:,.0f} bytes of text, {stored:,.0f} stored ({stats['compressed']} of")
    print(
        f"  {stats['n']} compressed: {stats['methods'] or 'none'}); store reads: {reads_text:,.0f}"
    )
    print(f"  bytes of text, {reads_stored:,.0f} stored; default_toast_compression = {default},")
    print(f"  lz4 {'available' if lz4 else 'not built in'}")
    rows = await conn.fetch(
        "SELECT payload, reads::text FROM store_notifications WHERE payload IS NOT NULL"
        " ORDER BY id LIMIT $1",
        sample,
    )
    journal = [(r["payload"], r["reads"]) for r in rows]
    if not journal:
        return
    servers = [("this server", conn)]
    other = await asyncpg.connect(compression_url) if compression_url else None
    if other is not None:
        servers.append((f"PostgreSQL {await other.fetchval('SHOW server_version')}", other))
    try:
        for label, pairs in (
            ("journal payload + reads", journal),
            ("real Apple notifications", [(body, None) for body in real]),
        ):
            if not pairs:
                continue
            share = x5c_share([p for p, _ in pairs])
            if share is not None:
                print(f"{label}: x5c chains {share[1]:,.0f} of {share[0]:,.0f} bytes ({share[1] / share[0]:.0%})")  # fmt: skip  # noqa: E501
            for name, server in servers:
                found = await bytes_by_method(server, pairs)
                print(f"{label}: stored bytes per row by compression, {name}: {found}")
    finally:
        if other is not None:
            await other.close()


def real_apple(directory: Path | None) -> list[str]:
    """Bodies as Apple posts them (`{"signedPayload": ...}`) of the real signed notifications
    in `directory` (shared/realdata/apple: JSON files with a `jws`), repeated to 200."""
    if directory is None:
        return []
    bodies = []
    for path in sorted(directory.glob("*.json")):
        jws = json.loads(path.read_text())["jws"]
        if "notificationType" in json.loads(b64url_decode(jws.split(".")[1])):
            bodies.append(json.dumps({"signedPayload": jws}))
    return (bodies * (200 // max(len(bodies), 1) + 1))[:200] if bodies else []


async def measure(
    url: str,
    notifications: int,
    title: str,
    args: argparse.Namespace,
    seed_lsn: int,
    real: Sequence[str] = (),
) -> None:
    conn = await asyncpg.connect(url)
    try:
        wal = (await conn.fetchval(WAL_LSN) - seed_lsn) / notifications
        print(f"WAL written while seeding: {wal:,.0f} bytes per notification")
        before = await sizes(conn, notifications)
        unused = [(n, s) for n, s in before.indexes.items() if s * notifications >= SMALL]
        scans = {
            f"{r['table_name']}.{r['index_name']}": r["scans"] for r in await conn.fetch(INDEXES)
        }
        await payload_report(conn, args.compression_url, list(real))
        prune_lsn = await conn.fetchval(WAL_LSN)
        await conn.execute(PRUNE_ALL)
        wal = (await conn.fetchval(WAL_LSN) - prune_lsn) / notifications
        print(f"WAL written by pruning: {wal:,.0f} bytes per notification")
        await conn.execute("VACUUM FULL store_notifications")
        after = await sizes(conn, notifications)
        print_sizes(title, before, after, notifications)
        idle = [n for n, _ in unused if scans[n] == 0]
        print(f"indexes ≥ {SMALL // 1024} KiB no statement of this run used:", ", ".join(idle))
        await conn.execute("VACUUM FULL")
        print_live(await sizes(conn, notifications), args.users, notifications)
    finally:
        await conn.close()


async def wal_lsn(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(WAL_LSN))
    finally:
        await conn.close()


async def serve(config: Path, tmp: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "RECEIPTD_CONFIG": str(config)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    log = (tmp / "service.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiptd", "serve", env=env, stdout=log, stderr=log
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()  # SIGTERM: the service stops its embedded servers
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def database_url(tmp: Path) -> str:
    if (tmp / "database_url").exists():  # --server-url
        return (tmp / "database_url").read_text()
    from pgserver import postgres_server  # the service's embedded cluster, still running

    return str(postgres_server.get_server(tmp / "data" / "postgres", cleanup_mode=None).get_uri())


def point_at(config: Path, tmp: Path, url: str) -> None:
    """The service's config names database `url` (and the bench reads it from `tmp`)."""
    config.write_text(config.read_text() + f'\n[database]\nurl = "{url}"\n')
    (tmp / "database_url").write_text(url)


@contextlib.asynccontextmanager
async def database(server_url: str | None, tmp: Path, config: Path) -> AsyncIterator[Path]:
    """A fresh database on `server_url` named in the service's config (dropped afterwards);
    without one, the service's embedded cluster under `tmp`. Yields the config."""
    if server_url is None:
        yield config
        return
    name = f"receiptd_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
        point_at(config, tmp, url)
        yield config
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run_apple(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rcd-sbench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        ca = TestCA.generate()
        ca.save(tmp / "ca")
        bodies = rounds(ca, args.users, args.events)
        port = free_port()
        async with database(args.server_url, tmp, apple_config(tmp, tmp / "ca", port)) as config:
            await seed_apple(args, tmp, config, port, bodies)


async def seed_apple(
    args: argparse.Namespace, tmp: Path, config: Path, port: int, bodies: list[list[dict[str, str]]]
) -> None:
    proc = await serve(config, tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        lsn = await wal_lsn(database_url(tmp))
        started = time.perf_counter()
        for batch in bodies:
            await post_apple(url, batch, 16)
        n = args.users * args.events
        print(f"\nApple: seeded {n} notifications in {time.perf_counter() - started:.0f} s")
        await measure(database_url(tmp), n, "Apple", args, lsn, real_apple(args.realdata))
    finally:
        await stop(proc)


def order_id(rng: random.Random) -> str:
    """An order id shaped like Play's (a renewal's is the first one with `..N` appended)."""
    return f"GPA.33{rng.randrange(10**2):02d}-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}-{rng.randrange(10**5):05d}"  # fmt: skip  # noqa: E501


def play_token(rng: random.Random) -> str:
    """A purchase token shaped like Play's: letters, then a dot-separated opaque tail."""
    letters = string.ascii_letters + string.digits + "-_"
    head = "".join(rng.choice(string.ascii_lowercase) for _ in range(24))
    return head + ".AO-J1O" + "".join(rng.choice(letters) for _ in range(TOKEN_LENGTH - 31))


async def run_google(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rcd-sbench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        keys = GoogleTestKeys.generate()
        fake = FakePlay(keys=keys)
        await fake.start()
        port = free_port()
        config, audience = google_config(tmp, fake, keys, port)
        try:
            async with database(args.server_url, tmp, config):
                await seed_google(args, tmp, config, port, fake, keys, audience)
        finally:
            await fake.stop()


async def seed_google(
    args: argparse.Namespace,
    tmp: Path,
    config: Path,
    port: int,
    fake: FakePlay,
    keys: GoogleTestKeys,
    audience: str,
) -> None:
    proc = await serve(config, tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        lsn = await wal_lsn(database_url(tmp))
        headers = {"Authorization": f"Bearer {keys.sign_push_token(audience, PUSH_EMAIL)}"}
        rng = random.Random(24)
        users = [(f"u-{i}", play_token(rng), order_id(rng)) for i in range(args.users)]
        start = datetime.now(UTC) - timedelta(hours=args.events + 1)
        started = time.perf_counter()
        for k in range(args.events):
            now = start + timedelta(hours=k)
            bodies = []
            for user, token, order in users:
                purchase = subscription_purchase(
                        "active", now=now, user=user, order_id=order if k == 0 else f"{order}..{k}"
                    )  # fmt: skip
                fake.set_subscription(PACKAGE, token, purchase)
                note = subscription_notification(
                    PACKAGE, token, PURCHASED if k == 0 else RENEWED, event_time=now
                )
                message_id = str(rng.randrange(10**16, 10**17))  # Pub/Sub ids are numbers
                bodies.append(push_envelope(note, message_id, publish_time=now))
            await post_google(url, bodies, headers, 16)
        n = args.users * args.events
        print(f"\nGoogle: seeded {n} pushes in {time.perf_counter() - started:.0f} s")
        await measure(database_url(tmp), n, "Google", args, lsn)
    finally:
        await stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events", type=int, default=5, help="notifications per user")
    parser.add_argument("--store", choices=("apple", "google", "both"), default="both")
    parser.add_argument(
        "--compression-url",
        help="also measure the payloads' TOAST per method on this PostgreSQL (one built with lz4)",
    )
    parser.add_argument(
        "--server-url",
        help="run the service on this PostgreSQL (a fresh database each store) instead of the"
        " embedded one",
    )
    parser.add_argument(
        "--realdata",
        type=Path,
        help="also measure the real Apple notifications there (shared/realdata/apple)",
    )
    args = parser.parse_args()
    if args.store in ("apple", "both"):
        asyncio.run(run_apple(args))
    if args.store in ("google", "both"):
        asyncio.run(run_google(args))


if __name__ == "__main__":
    main()
