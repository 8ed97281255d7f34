"""Retention of raw store payloads on real PostgreSQL: what a pass prunes (and keeps), its
batches, the advisory lock between replicas, and the periodic loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from services.retention import PayloadPruner, cutoff_for, prune
from storage import journal

DAYS = 90
KEPT_COLUMNS = (
    "id",
    "store",
    "message_id",
    "received_at",
    "notification_type",
    "subtype",
    "signed_at",
    "purchase_id",
    "result",
    "reason",
    "purchase_ids",
)

INSERT = """
INSERT INTO store_notifications
    (store, message_id, received_at, notification_type, subtype, signed_at, purchase_id,
     result, reason, payload, reads, purchase_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ARRAY[$7])
"""


async def insert(
    conn: asyncpg.Connection, message_id: str, received_at: datetime, store: str = "app_store"
) -> None:
    await conn.execute(
        INSERT,
        store,
        message_id,
        received_at,
        "DID_RENEW",
        "BILLING_RECOVERY",
        received_at - timedelta(seconds=3),
        f"purchase-{message_id}",
        "processed",
        None,
        f'{{"raw": "{message_id}"}}',
        f'{{"now": "{received_at.isoformat()}", "reads": [{{"answer": "{message_id}"}}]}}',
    )


async def rows(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    found = await conn.fetch("SELECT * FROM store_notifications ORDER BY id")
    return {r["message_id"]: r for r in found}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def test_prunes_only_payloads_received_before_the_cutoff_and_keeps_the_rows(
    pool, conn, clock
) -> None:
    now = clock.now
    cutoff = cutoff_for(now, DAYS)
    assert cutoff == now - timedelta(days=90)
    received = {
        "year-old": now - timedelta(days=365),
        "just-before": cutoff - timedelta(microseconds=1),
        "at-cutoff": cutoff,  # exactly DAYS old: not older, kept
        "just-after": cutoff + timedelta(microseconds=1),
        "today": now,
    }
    for message_id, at in received.items():
        await insert(conn, message_id, at, store="play_store" if "j" in message_id else "app_store")
    before = await rows(conn)

    assert await prune(pool, now, DAYS) == 2

    after = await rows(conn)
    pruned = {m for m, r in after.items() if r["payload"] is None}
    assert pruned == {"year-old", "just-before"}
    for message_id, row in after.items():
        assert {c: row[c] for c in KEPT_COLUMNS} == {c: before[message_id][c] for c in KEPT_COLUMNS}
        if message_id in pruned:
            assert row["payload_pruned_at"] == now
            assert row["reads"] is None  # the store's answers go with the payload
        else:
            assert row["payload"] == before[message_id]["payload"]
            assert row["reads"] is not None
            assert row["reads"] == before[message_id]["reads"]
            assert row["payload_pruned_at"] is None


async def test_a_pruned_row_is_not_pruned_again(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    assert await prune(pool, clock.now, DAYS) == 1
    first = (await rows(conn))["old"]["payload_pruned_at"]
    clock.advance(days=1)
    assert await prune(pool, clock.now, DAYS) == 0
    assert (await rows(conn))["old"]["payload_pruned_at"] == first


async def test_a_backlog_is_pruned_in_bounded_batches_with_progress(pool, conn, clock) -> None:
    old = clock.now - timedelta(days=DAYS + 10)
    for i in range(25):
        await insert(conn, f"m{i:02}", old + timedelta(minutes=i))
    await insert(conn, "recent", clock.now - timedelta(days=1))
    seen: list[tuple[int, int]] = []

    pruned = await prune(pool, clock.now, DAYS, batch=10, progress=lambda *p: seen.append(p))

    assert pruned == 25
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert {m for m, r in (await rows(conn)).items() if r["payload"] is not None} == {"recent"}


async def test_rows_locked_by_a_writer_are_skipped_not_waited_for(pool, conn, clock) -> None:
    old = clock.now - timedelta(days=DAYS + 1)
    for message_id in ("a", "b", "c"):
        await insert(conn, message_id, old)
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM store_notifications WHERE message_id = 'b' FOR UPDATE")
        async with asyncio.timeout(10):  # a blocked statement would hang here
            assert await prune(pool, clock.now, DAYS) == 2
    assert await prune(pool, clock.now, DAYS) == 1  # the next pass gets it


async def test_a_second_pass_skips_while_another_holds_the_lock(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    assert await journal.try_lock(conn)  # another replica's pass, on its own session
    assert await prune(pool, clock.now, DAYS) is None
    with capture_logs() as logs:
        assert await PayloadPruner(pool, clock, DAYS).run_once() is None
    assert [e["event"] for e in logs] == ["raw_payload_prune_skipped"]
    assert (await rows(conn))["old"]["payload"] is not None
    await journal.unlock(conn)
    assert await prune(pool, clock.now, DAYS) == 1


async def test_the_lock_is_released_after_a_pass(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    assert await prune(pool, clock.now, DAYS) == 1
    assert await journal.try_lock(conn)  # free for the next replica
    await journal.unlock(conn)


async def test_a_waiting_pass_prunes_once_the_holder_is_done(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    assert await journal.try_lock(conn)
    task = asyncio.create_task(prune(pool, clock.now, DAYS, wait=True))
    async with asyncio.timeout(10):  # poll with a deadline until it waits on the lock
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            await asyncio.sleep(0.01)
    assert not task.done()
    await journal.unlock(conn)
    async with asyncio.timeout(10):
        assert await task == 1


async def test_one_pass_logs_what_it_pruned_and_reports_it(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    counted: list[int] = []
    pruner = PayloadPruner(pool, clock, DAYS, on_pruned=counted.append)
    with capture_logs() as logs:
        assert await pruner.run_once() == 1
    assert counted == [1]
    assert logs == [
        {
            "event": "raw_payloads_pruned",
            "log_level": "info",
            "count": 1,
            "days": DAYS,
            "cutoff": cutoff_for(clock.now, DAYS).isoformat(),
        }
    ]


async def test_the_loop_prunes_soon_after_start_and_stops(pool, conn, clock) -> None:
    await insert(conn, "old", clock.now - timedelta(days=DAYS + 1))
    pruner = PayloadPruner(pool, clock, DAYS, first_pass_seconds=0, interval_seconds=3600)
    pruner.start()
    try:
        async with asyncio.timeout(10):  # poll with a deadline, no fixed sleep
            while (await rows(conn))["old"]["payload"] is not None:
                await asyncio.sleep(0.01)
    finally:
        await pruner.stop()
    await pruner.stop()  # idempotent
