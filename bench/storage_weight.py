"""Storage benchmark: what one Apple notification weighs in PostgreSQL (issue 24 point 3).

Seeds a fresh embedded PostgreSQL through the real service (`python -m receiptd serve`, a
test CA it trusts) with U Apple subscriptions of E signed notifications each, then reads the
size of every table receiptd writes — heap, TOAST and each index — and prints bytes per
notification for each, before and after `receiptd prune`-like dropping of raw payloads (the
retention window's effect), and which indexes no statement of the run used
(`pg_stat_user_indexes.idx_scan = 0`). Bounded: 127.0.0.1 only, a temporary directory.

    .venv/bin/python bench/storage.py [--users 2000] [--events 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from apple_ingest import post_all, wait_ready, write_config  # bench/ is on sys.path
from replay import rounds

from simulators.apple_ca import TestCA

SIZES = """
SELECT c.relname AS name,
       pg_relation_size(c.oid) AS heap,
       coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast,
       pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC
"""
UNUSED = """
SELECT relname AS table_name, indexrelname AS index_name, pg_relation_size(indexrelid) AS size
FROM pg_stat_user_indexes WHERE idx_scan = 0 ORDER BY pg_relation_size(indexrelid) DESC
"""


async def measure(url: str, notifications: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetch(SIZES)
        total = sum(r["heap"] + r["toast"] + r["indexes"] for r in rows)
        print(f"\n{notifications} notifications; bytes per notification (heap / TOAST / indexes):")
        for r in rows:
            weight = r["heap"] + r["toast"] + r["indexes"]
            if weight < 64 * 1024:
                continue
            per = [round(r[k] / notifications) for k in ("heap", "toast", "indexes")]
            print(f"  {r['name']:<24} {per[0]:>7} / {per[1]:>7} / {per[2]:>7}")
        print(f"  {'total':<24} {round(total / notifications):>7} bytes per notification")
        unused = await conn.fetch(UNUSED)
        big = [u for u in unused if u["size"] >= 64 * 1024]
        print("indexes no statement of this run used (≥ 64 KiB):")
        for u in big:
            print(f"  {u['table_name']}.{u['index_name']}: {u['size'] // 1024} KiB")
        payload = await conn.fetchval(
            "SELECT avg(octet_length(payload)) FROM store_notifications WHERE payload IS NOT NULL"
        )
        print(f"raw payload: {round(payload or 0)} bytes per notification on average (text)")
        await conn.execute("UPDATE store_notifications SET payload = NULL")
        await conn.execute("VACUUM FULL store_notifications")
        pruned = sum(r["heap"] + r["toast"] + r["indexes"] for r in await conn.fetch(SIZES))
        per = round(pruned / notifications)
        print(f"after pruning every raw payload: {per} bytes per notification")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5, help="notifications per user")
    parser.add_argument("--port", type=int, default=18091)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rcd-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        ca = TestCA.generate()
        ca.save(tmp / "ca")
        bodies = rounds(ca, args.users, args.events)
        config = write_config(tmp, tmp / "ca", args.port)
        env = {**os.environ, "RECEIPTD_CONFIG": str(config)}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiptd", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            asyncio.run(wait_ready(url, proc))
            started = time.perf_counter()
            for batch in bodies:
                asyncio.run(post_all(url, batch, 16))
            print(f"seeded {args.users * args.events} notifications in "
                  f"{time.perf_counter() - started:.0f} s through the service")  # fmt: skip
            from pgserver import postgres_server  # the service's embedded cluster

            server = postgres_server.get_server(tmp / "data" / "postgres", cleanup_mode=None)
            asyncio.run(measure(server.get_uri(), args.users * args.events))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
