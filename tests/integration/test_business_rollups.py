"""The business page's cost does not grow with history (issue 22 point 5), on real
PostgreSQL: feed_daily kept by record_changes under many concurrent writers is exactly what
the migration's backfill computes from the change feed (no event counted twice or lost, no
deadlock), and none of the page's statements (nor /v1/revenue's) reads a large table whole
once a few hundred thousand rows are there (tests/plan_seed.py; every other statement:
tests/integration/test_plans.py)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from entitlements import feed_rollup
from storage import console_metrics, money
from storage import offers as offers_db
from storage import purchases as purchases_db
from storage import refund_requests as refund_db
from storage import store_actions as store_actions_db
from tests import plan_seed

plan_database = plan_seed.plan_database  # the fixture: the seeded database, shared
BASE = datetime(2026, 11, 1, tzinfo=UTC)
MIGRATION = Path(__file__).resolve().parents[2] / "migrations" / "0016_feed_daily.sql"
# Rows whose changes summed to nothing stay in the kept table; the backfill writes none.
FEED_DAILY = """
SELECT * FROM feed_daily
WHERE active_change <> 0 OR trials <> 0 OR conversions <> 0 OR refunds <> 0 OR billing_issues <> 0
ORDER BY day, entitlement, store
"""


def backfill_statement() -> str:
    """The migration's backfill (the INSERT … SELECT over customer_events)."""
    text = MIGRATION.read_text()
    start = text.index("WITH events AS")
    return text[start : text.index(";", start)]


def snapshot(rng: random.Random, rnd: int) -> dict[str, Any]:
    """Random entitlements; every end falls on a whole day after the round's hour."""
    out: dict[str, Any] = {}
    for name in rng.sample(["premium", "pro"], rng.randint(0, 2)):
        status = rng.choice(["active", "active", "grace_period", "billing_retry", "revoked"])
        ends = BASE + timedelta(days=rnd + rng.randint(1, 40))
        store = rng.choice(["app_store", "play_store", "promotional"])
        out[name] = {
            "active": status in ("active", "grace_period"),
            "store": store,
            "status": status,
            "period_type": rng.choice(["trial", "normal", "intro"]),
            "expires_at": None if rng.random() < 0.1 else ends.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "grace_period_expires_at": (
                (ends + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
                if status == "grace_period"
                else None
            ),
        }
    return out


async def test_concurrent_writers_keep_the_rollup_exact(database_url) -> None:
    users = [f"roll-{i}" for i in range(12)]
    pool = await asyncpg.create_pool(database_url, min_size=8, max_size=16, command_timeout=30)
    try:
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO customers (app_user_id) VALUES ($1)", [(u,) for u in users]
            )

        async def writer(seed: int, rnd: int) -> None:
            rng = random.Random(seed)
            chosen = rng.sample(users, rng.randint(1, 4))
            snaps = {u: snapshot(rng, rnd) for u in chosen}
            at = BASE + timedelta(days=rnd, minutes=rng.randint(1, 60))
            async with pool.acquire() as conn, conn.transaction():
                await purchases_db.record_changes(
                    conn,
                    [(u, "bench") for u in chosen],
                    lambda record: snaps[record.app_user_id],
                    at=at,
                )

        for rnd in range(15):  # rounds a day apart; 24 writers at once in each
            await asyncio.wait_for(
                asyncio.gather(*(writer(rnd * 100 + w, rnd) for w in range(24))), 60
            )
        async with pool.acquire() as conn:
            events = await conn.fetchval("SELECT count(*) FROM customer_events")
            assert events > 100
            kept = [dict(r) for r in await conn.fetch(FEED_DAILY)]
            assert any(r["active_change"] for r in kept)
            assert any(r["trials"] for r in kept)
            async with conn.transaction():
                await conn.execute("DELETE FROM feed_daily")
                await conn.execute(backfill_statement())
                recomputed = [dict(r) for r in await conn.fetch(FEED_DAILY)]
            assert kept == recomputed
            # Everyone's contributions end: the active count comes back to what runs at the end.
            total = await conn.fetchval("SELECT sum(active_change) FROM feed_daily")
            running = sum(
                1
                for row in await conn.fetch(
                    "SELECT snapshot FROM customers WHERE snapshot IS NOT NULL"
                )
                for v in json.loads(row["snapshot"]).values()
                if v["active"]
                and v["store"] != "promotional"
                and v["expires_at"] is None
                and v["status"] != "grace_period"
            )
            assert total == running
    finally:
        await pool.close()


def test_a_snapshot_replaced_before_its_end_moves_its_minus_one() -> None:
    at = BASE + timedelta(hours=1)
    old = {"premium": {"active": True, "store": "app_store", "status": "active",
                       "period_type": "trial", "expires_at": "2026-11-08T00:00:00Z",
                       "grace_period_expires_at": None}}  # fmt: skip
    new = {
        "premium": old["premium"] | {"period_type": "normal", "expires_at": "2026-12-08T00:00:00Z"}
    }
    rows = feed_rollup.feed_changes(old, new, at)
    day = at.date()
    assert [(r.day.isoformat(), r.active_change, r.conversions) for r in rows] == [
        (day.isoformat(), 0, 1),  # -1 for the trial, +1 for the paid period: only a conversion
        ("2026-11-08", 1, 0),  # the trial's end no longer takes one away
        ("2026-12-08", -1, 0),  # the paid period's does
    ]


# --- no large table read whole (the database: tests/plan_seed.py) ---------------------------


def statements(now: datetime) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Every statement of GET /console/business and GET /v1/revenue, and the new request
    paths' reads of one customer or purchase, with arguments (rows of tests/plan_seed.py;
    tests/integration/test_plans.py checks every other statement)."""
    first, last = (now - timedelta(days=29)).date(), now.date()
    m = console_metrics
    bought = plan_seed.purchase_id(21)  # an App Store purchase of c7
    return {
        "ACTIVE_CHANGES": (m.ACTIVE_CHANGES, (first, last)),
        "TRANSITIONS": (m.TRANSITIONS, (first, last)),
        "MRR_CHANGES": (m.MRR_CHANGES, (first, last, None)),
        "RUNNING_TRIALS": (m.RUNNING_TRIALS, (now, None)),
        "RUNNING_TRIALS (real money)": (m.RUNNING_TRIALS, (now, False)),
        "OPEN_GRANTS": (m.OPEN_GRANTS, (now,)),
        "LATENCY_BY_DAY": (m.LATENCY_BY_DAY, (now - timedelta(days=29), now)),
        "REVENUE_DAYS": (money.REVENUE_DAYS, (first, last, None)),
        "MRR_AS_OF": (money.MRR_AS_OF, (last, None)),
        # The request paths added with them (issues 21-23): reads of one customer or purchase.
        "SELECT_CUSTOMER_RECORD": (purchases_db.SELECT_CUSTOMER_RECORD, ("c7",)),
        "offers.STATES": (offers_db.STATES, ("c7",)),
        "offers.OFFER_SNAPSHOTS": (offers_db.OFFER_SNAPSHOTS, ("c7", "premium")),
        "store_actions.HELD": (store_actions_db.HELD, ("c7",)),
        "store_actions.EXTENSIONS_SINCE": (
            store_actions_db.EXTENSIONS_SINCE,
            ("app_store", [bought], now - timedelta(days=365)),
        ),
        "money.SET_REFUND": (money.SET_REFUND, ("app_store", bought, "ch21", now)),
        "refund_requests.PURCHASE_OWNER": (refund_db.PURCHASE_OWNER, ("app_store", bought)),
    }


async def test_the_page_reads_no_large_table_whole(plan_database: plan_seed.Seeded) -> None:
    conn = await asyncpg.connect(plan_database.url, command_timeout=120)
    try:
        offenders = {}
        for name, (sql, args) in statements(plan_database.now).items():
            plan = await plan_seed.plan_of(conn, sql, args)
            scans = plan_seed.full_scans(plan, plan_database.partial)
            if scans:
                offenders[name] = scans
        assert offenders == {}, f"large tables read whole: {offenders}"
    finally:
        await conn.close()
