"""The delivery claim at the SQL level, on real PostgreSQL: replicas claiming at the same
moment get disjoint rows (SKIP LOCKED), a claimed row is leased until its outcome is written
or the lease lapses, a late outcome of a lapsed claim is fenced off, and only the first
undelivered event of each customer is ever claimable."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from storage import outbox as repo

EP = "endpoint-a"
LEASE = timedelta(seconds=70)


@pytest.fixture
async def conns(database_url):
    opened = [await asyncpg.connect(database_url, command_timeout=10) for _ in range(3)]
    yield opened
    for conn in opened:
        await conn.close()


async def append(conn: asyncpg.Connection, user: str, sequence: int, at) -> None:
    await conn.execute(
        "INSERT INTO customer_events (event_id, app_user_id, sequence, type, entitlements,"
        " created_at) VALUES ($1, $2, $3, 'grant_added', $4::jsonb, $5)",
        uuid.uuid4(),
        user,
        sequence,
        json.dumps({}),
        at,
    )


async def test_simultaneous_claims_are_disjoint_and_leased(conns, clock) -> None:
    a, b, c = conns
    now = clock.now
    await append(a, "u-before", 1, now)  # before the endpoint existed: never handed
    await repo.register(a, EP, now)
    for n in range(6):
        await append(a, f"u-{n}", 1, now)
    assert await repo.hand(a, EP, now, 500) == 6
    assert await repo.hand(a, EP, now, 500) == 0

    async with a.transaction():  # replica A has claimed but not committed yet
        first = await repo.claim(a, EP, now, now + LEASE, 3)
        second = await repo.claim(b, EP, now, now + LEASE, 10)  # replica B skips A's rows
        assert len(first) == 3
        assert len(second) == 3
        assert {x.feed_id for x in first}.isdisjoint({x.feed_id for x in second})
    assert await repo.claim(c, EP, now, now + LEASE, 10) == []  # all leased
    assert await repo.claim(c, EP, now + LEASE - timedelta(seconds=1), now + LEASE, 10) == []

    lapsed = now + LEASE + timedelta(seconds=1)  # both replicas died: their rows come back
    again = await repo.claim(c, EP, lapsed, lapsed + LEASE, 10)
    assert sorted(x.feed_id for x in again) == sorted(x.feed_id for x in [*first, *second])
    assert {x.attempt for x in again} == {2}
    stale = first[0]  # A's late failure report must not release C's lease
    await repo.failed(c, EP, stale, next_attempt_at=now, error="late", now=lapsed)
    row = await c.fetchrow(
        "SELECT attempts, leased_until, last_error FROM webhook_deliveries"
        " WHERE endpoint_key = $1 AND feed_id = $2",
        EP,
        stale.feed_id,
    )
    assert (row["attempts"], row["leased_until"], row["last_error"]) == (2, lapsed + LEASE, None)
    for x in again:
        await repo.delivered(c, EP, x.feed_id, lapsed)
    assert await c.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_only_the_first_undelivered_event_of_a_customer_is_claimable(conns, clock) -> None:
    a, _, _ = conns
    now = clock.now
    await repo.register(a, EP, now)
    await repo.register(a, "endpoint-b", now)
    for seq in (1, 2, 3):
        await append(a, "u-1", seq, now)
    await append(a, "u-2", 1, now)
    for key in (EP, "endpoint-b"):
        assert await repo.hand(a, key, now, 2) == 2  # in steps, in id order
        assert await repo.hand(a, key, now, 2) == 2

    def heads(claimed: list[repo.Claimed]) -> list[tuple[str, int]]:
        return [(x.event["app_user_id"], x.event["sequence"]) for x in claimed]

    head, other = await repo.claim(a, EP, now, now + LEASE, 10)
    assert heads([head, other]) == [("u-1", 1), ("u-2", 1)]
    later = now + timedelta(hours=1)
    await repo.failed(a, EP, head, next_attempt_at=later, error="http 500", now=now)
    await repo.delivered(a, EP, other.feed_id, now)
    assert await repo.claim(a, EP, now, now + LEASE, 10) == []  # u-1's second waits
    # The other endpoint has its own rows: unaffected by the first one's failure.
    assert heads(await repo.claim(a, "endpoint-b", now, now + LEASE, 10)) == [
        ("u-1", 1),
        ("u-2", 1),
    ]
    [retry] = await repo.claim(a, EP, later, later + LEASE, 10)
    assert heads([retry]) == [("u-1", 1)]
    await repo.delivered(a, EP, retry.feed_id, later)
    assert heads(await repo.claim(a, EP, later, later + LEASE, 10)) == [("u-1", 2)]

    [state] = (await repo.states(a, [EP], later)).values()
    assert (state.pending, state.in_flight, state.retrying) == (2, 1, 0)
    assert state.oldest_pending_at == now
    assert state.last_error == "http 500"
