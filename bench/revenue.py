"""Revenue and business-page benchmark (issue 22 point 5): GET /v1/revenue (a 30-day and a
365-day window) and GET /console/business at 1,000 purchases and at 10,000,000, in one run on
one machine; the small database is the baseline and the ratio large ÷ small is printed
(target at most 1.2 times).

The databases hold the same present — 500 paying subscriptions, 100 running trials, 50
grants, 100 store notifications a day — and different histories: `--small` (1,000) or
`--large` (10,000,000) purchases (the rest expired over three years), a charge per purchase,
three years of rollup rows (revenue_daily, mrr_daily, feed_daily) and a sample of the change
feed (one event per purchase up to `--events`, 1,000,000 by default: scaled down from one per
purchase to keep the disk and the seeding time reasonable). Rows are generated inside
PostgreSQL (INSERT … SELECT generate_series, which beats COPY from Python for synthetic rows),
then VACUUM ANALYZE and CHECKPOINT before measuring.

The app runs in-process (create_app on an AppRunner, Redis off) against embedded PostgreSQL
(pgserver, temporary directory) or $DATABASE_URL's server; requests are sequential, one at a
time, so the figures are latencies, not throughput.

    .venv/bin/python bench/revenue.py [--small 1000] [--large 10000000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from config.settings import Settings
from server.app import create_app
from server.embedded import EmbeddedPostgres
from storage.migrations import migrate

KEY = "bench-admin-key-0123456789abcdef"
PAYING, TRIALS, GRANTS, NOTIFICATIONS_A_DAY, DAYS = 500, 100, 50, 100, 3 * 365
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# $1 purchases, $2 now, $3 the active set (paying + trials), $4 trials. Purchase ids are
# ordered so the unique index fills from the right; history has no owner (no customer row).
PURCHASES = """
INSERT INTO purchases (store, purchase_id, app_user_id, product_id, kind, status, period_type,
    will_renew, expires_at, purchased_at, is_sandbox, state, state_updated_at, price_amount,
    price_currency, created_at, updated_at, app)
SELECT CASE WHEN i % 2 = 0 THEN 'app_store' ELSE 'play_store' END,
       'p' || lpad(i::text, 10, '0'),
       CASE WHEN i <= $3 THEN 'bench-u-' || i END,
       'com.example.premium.monthly', 'subscription',
       CASE WHEN i <= $3 THEN 'active' ELSE 'expired' END,
       CASE WHEN i <= $4 THEN 'trial' ELSE 'normal' END,
       i <= $3,
       CASE WHEN i <= $3 THEN $2::timestamptz + interval '20 days'
            ELSE $2::timestamptz - (i % 1095) * interval '1 day' END,
       $2::timestamptz - (i % 1095) * interval '1 day' - interval '30 days',
       false, '{}'::jsonb, $2::timestamptz, '9.99', (ARRAY['USD', 'EUR', 'GBP'])[1 + i % 3],
       $2::timestamptz, $2::timestamptz, 'com.example.app'
FROM generate_series(1, $1::bigint) AS i
"""
CHARGES = """
INSERT INTO charges (store, purchase_id, charge_id, product_id, app, is_sandbox, amount,
    currency, charged_at, period_end, months, created_at)
SELECT CASE WHEN i % 2 = 0 THEN 'app_store' ELSE 'play_store' END,
       'p' || lpad(i::text, 10, '0'), 'c' || i, 'com.example.premium.monthly',
       'com.example.app', false, 9.99, (ARRAY['USD', 'EUR', 'GBP'])[1 + i % 3],
       $2::timestamptz - (i % 1095) * interval '1 day' - interval '30 days',
       $2::timestamptz - (i % 1095) * interval '1 day', 1, $2::timestamptz
FROM generate_series(1, $1::bigint) AS i
"""
# Three years of rollup rows, every day, store and currency (the same at both sizes: rollup
# rows follow days, stores and currencies, not purchases).
REVENUE_DAILY = """
INSERT INTO revenue_daily (day, store, currency, is_sandbox, gross, refunded, charges, refunds)
SELECT d, s, c, false, 99.90, 9.99, 10, 1
FROM generate_series($1::date - $2::int, $1::date, '1 day') AS d,
     unnest(ARRAY['app_store', 'play_store']) AS s, unnest(ARRAY['USD', 'EUR', 'GBP']) AS c
"""
MRR_DAILY = """
INSERT INTO mrr_daily (day, store, currency, is_sandbox, amount, subscriptions)
SELECT d, s, c, false, CASE WHEN d < $1::date THEN 9.99 ELSE 0 END, 1
FROM generate_series($1::date - $2::int, $1::date, '1 day') AS d,
     unnest(ARRAY['app_store', 'play_store']) AS s, unnest(ARRAY['USD', 'EUR', 'GBP']) AS c
"""
FEED_DAILY = """
INSERT INTO feed_daily (day, entitlement, store, active_change, trials, conversions, refunds,
    billing_issues)
SELECT d, 'premium', s, 1, 3, 2, 1, 1
FROM generate_series($1::date - $2::int, $1::date, '1 day') AS d,
     unnest(ARRAY['app_store', 'play_store']) AS s
"""
CUSTOMERS = """
INSERT INTO customers (app_user_id) SELECT 'bench-u-' || i FROM generate_series(1, $1::int) AS i
"""
GRANT_ROWS = """
INSERT INTO grants (app_user_id, entitlement, starts_at, expires_at)
SELECT 'bench-u-' || i, 'premium', $2::timestamptz - interval '1 day',
       $2::timestamptz + interval '30 days'
FROM generate_series(1, $1::int) AS i
"""
EVENTS = """
INSERT INTO customer_events (event_id, app_user_id, sequence, type, entitlements, created_at)
SELECT gen_random_uuid(), 'bench-e-' || (i / 4), i % 4 + 1, 'purchase',
       jsonb_build_object('premium', jsonb_build_object('active', true, 'store', 'app_store',
           'status', 'active', 'period_type', 'normal', 'expires_at', '2026-01-01T00:00:00Z')),
       $2::timestamptz - (i % 1095) * interval '1 day'
FROM generate_series(1, $1::bigint) AS i
"""
# $1 notifications from $4 days ago on, $3 a day, pushed by the stores two hours after signing.
NOTIFICATIONS = """
INSERT INTO store_notifications (store, message_id, received_at, notification_type, signed_at,
    result, payload)
SELECT CASE WHEN i % 2 = 0 THEN 'app_store' ELSE 'play_store' END, 'm' || $4::int || '-' || i,
       $2::timestamptz - ($4::int + (i / $3::int) % 1065) * interval '1 day'
           - (i % 97) * interval '1 minute',
       'DID_RENEW',
       $2::timestamptz - ($4::int + (i / $3::int) % 1065) * interval '1 day'
           - interval '2 hours',
       'processed', NULL
FROM generate_series(0, $1::bigint - 1) AS i
"""


async def seed(server_url: str, name: str, purchases: int, events: int) -> dict[str, float]:
    """A migrated database `name` with `purchases` purchases (see the module docstring);
    seconds per step."""
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    conn = await asyncpg.connect(with_database(server_url, name), command_timeout=None)
    now = datetime.now(UTC)
    today = now.date()
    timings: dict[str, float] = {}
    try:
        await migrate(conn)
        active = PAYING + TRIALS
        recent = 30 * NOTIFICATIONS_A_DAY  # the last 30 days: the same at both sizes
        history = min(purchases, events)  # the journal before, as the feed's sample
        steps = [
            ("customers", CUSTOMERS, (active,)),
            ("purchases", PURCHASES, (purchases, now, active, TRIALS)),
            ("charges", CHARGES, (purchases, now)),
            ("grants", GRANT_ROWS, (GRANTS, now)),
            ("customer_events", EVENTS, (min(purchases, events), now)),
            ("store_notifications", NOTIFICATIONS, (recent, now, NOTIFICATIONS_A_DAY, 0)),
            ("journal history", NOTIFICATIONS, (history, now, max(history // 1065, 1), 31)),
            ("revenue_daily", REVENUE_DAILY, (today, DAYS)),
            ("mrr_daily", MRR_DAILY, (today, DAYS)),
            ("feed_daily", FEED_DAILY, (today, DAYS)),
        ]
        for table, sql, args in steps:
            started = time.perf_counter()
            await conn.execute(sql, *args)
            timings[table] = time.perf_counter() - started
            print(f"  {name}: {table} in {timings[table]:.1f} s", flush=True)
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        timings["vacuum analyze"] = time.perf_counter() - started
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"  {name}: {size} on disk", flush=True)
        return timings
    finally:
        await conn.close()


async def signed_in_cookie(session: aiohttp.ClientSession, url: str) -> str:
    """Sign in to the console with the admin key; the session cookie header."""
    async with session.get(f"{url}/console/sign-in") as resp:
        token = CSRF.search(await resp.text())
        form_cookie = _cookies(resp)["receiptd_console_sign_in"]
    assert token is not None
    async with session.post(
        f"{url}/console/sign-in",
        data={"csrf": token.group(1), "api_key": KEY, "next": ""},
        headers={"Cookie": f"receiptd_console_sign_in={form_cookie}"},
        allow_redirects=False,
    ) as resp:
        return f"receiptd_console={_cookies(resp)['receiptd_console']}"


def _cookies(resp: aiohttp.ClientResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return {k: m.value for k, m in jar.items()}


async def measure(db_url: str, tmp: Path, requests: int) -> dict[str, list[float]]:
    """Latencies (ms) of each endpoint, `requests` sequential requests after a warm-up."""
    settings = Settings(
        server={"data_dir": tmp / "data"},
        database={"url": db_url},
        redis={"url": "off"},
        entitlements={"premium": {"products": ["com.example.premium.monthly"]}},
        auth={"api_keys": [{"name": "bench", "key": KEY, "scopes": ["admin"]}]},
    )
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    today = datetime.now(UTC).date()
    admin = {"Authorization": f"Bearer {KEY}"}
    results: dict[str, list[float]] = {}
    try:
        async with aiohttp.ClientSession() as session:
            cookie = await signed_in_cookie(session, url)
            targets = {
                "GET /v1/revenue (30 days)": (
                    f"{url}/v1/revenue?from={today - timedelta(days=29)}&to={today}",
                    admin,
                ),
                "GET /v1/revenue (365 days)": (
                    f"{url}/v1/revenue?from={today - timedelta(days=364)}&to={today}",
                    admin,
                ),
                "GET /console/business": (f"{url}/console/business", {"Cookie": cookie}),
            }
            for label, (target, headers) in targets.items():
                times = []
                for n in range(requests + 20):
                    started = time.perf_counter()
                    async with session.get(target, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{label}: {resp.status}")
                    if n >= 20:  # the first 20 warm the pool and the caches
                        times.append((time.perf_counter() - started) * 1000)
                results[label] = times
    finally:
        await runner.cleanup()
    return results


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    # The app's request lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="receiptd-bench-revenue-") as tmp_name:
        tmp = Path(tmp_name)
        embedded = None
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            embedded = EmbeddedPostgres(tmp / "pg")
            server_url = await embedded.start()
        try:
            names = {"small": ("bench_revenue_small", args.small)}
            names["large"] = ("bench_revenue_large", args.large)
            for name, size in names.values():
                started = time.perf_counter()
                await seed(server_url, name, size, args.events)
                print(f"seeded {size:,} purchases in {time.perf_counter() - started:.0f} s")
            # Alternate small and large twice: a drift of the machine hits both alike.
            figures: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
            for _round in range(2):
                for label, (name, _size) in names.items():
                    times = await measure(with_database(server_url, name), tmp, args.requests // 2)
                    for endpoint, values in times.items():
                        figures[label].setdefault(endpoint, []).extend(values)
                    print(f"  {label}: measured, load average {load_average()}", flush=True)
            print(f"\n{sys.platform}, {os.cpu_count()} cores, {args.requests} requests each")
            print(f"{'':28} {'1k p50':>8} {'1k p99':>8} {'big p50':>8} {'big p99':>8} ratio")
            for endpoint, small in figures["small"].items():
                large = figures["large"][endpoint]
                s50, s99 = quantile(small, 0.5), quantile(small, 0.99)
                l50, l99 = quantile(large, 0.5), quantile(large, 0.99)
                print(
                    f"{endpoint:28} {s50:8.2f} {s99:8.2f} {l50:8.2f} {l99:8.2f} "
                    f"x{l50 / s50:.2f} (p50)"
                )
            print(f"(ms; large = {args.large:,} purchases, small = {args.small:,})")
        finally:
            if embedded is not None:
                await embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
