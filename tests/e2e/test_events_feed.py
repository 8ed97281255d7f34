"""GET /v1/events (contract §3): the change feed in commit order, with stable paging while
writers run in parallel, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api.keys import SERVICE
from storage.feed import encode_cursor
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_token
from tests.factories import subscription_event


async def feed(client, after: str | None = None, limit: int | None = None, key=READER_KEY):
    params = {}
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = str(limit)
    resp = await client.get("/v1/events", params=params, headers=auth(key))
    return resp.status, await resp.json()


async def drain(client, limit: int) -> list[dict]:
    events, cursor = [], None
    while True:
        status, page = await feed(client, cursor, limit)
        assert status == 200
        events += page["events"]
        if not page["events"]:
            return events
        cursor = page["next_cursor"]


async def grant(client, user: str, **body) -> None:
    resp = await client.post(
        f"/v1/customers/{user}/entitlements/premium/grants", json=body, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 201


async def test_an_empty_feed_keeps_its_place(client) -> None:
    status, page = await feed(client)
    assert (status, page["events"]) == (200, [])
    again = await feed(client, page["next_cursor"])
    assert again == (200, page)


async def test_events_in_commit_order_with_per_customer_sequences(client, clock) -> None:
    await grant(client, "u-1", duration="P1M")
    clock.advance(minutes=1)
    await grant(client, "u-2")
    clock.advance(minutes=1)
    service = client.app[SERVICE]
    event = subscription_event(  # outlasts the grant: the entitlement shows it, an event
        purchased_at=clock.now - timedelta(days=1),
        expires_at=clock.now + timedelta(days=60),
        product_id="premium_monthly",
    )
    await service.ingest(None, [event], submitted_by="u-1")
    clock.advance(minutes=1)
    resp = await client.delete(
        "/v1/customers/u-1/entitlements/premium/grants", headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    events = await drain(client, limit=1)
    assert [(e["app_user_id"], e["sequence"], e["type"]) for e in events] == [
        ("u-1", 1, "grant_added"),
        ("u-2", 1, "grant_added"),
        ("u-1", 2, "purchased"),
        ("u-1", 3, "grants_ended"),
    ]
    first = events[0]
    assert set(first) == {"id", "sequence", "app_user_id", "type", "created_at", "entitlements"}
    assert first["entitlements"]["premium"]["store"] == "promotional"
    assert first["created_at"] == (clock.now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The snapshot after the change: the store subscription shows once the grant ended.
    assert events[-1]["entitlements"]["premium"]["store"] == "app_store"
    assert len({e["id"] for e in events}) == 4


async def test_paging_is_stable_while_writers_run(client) -> None:
    """Writers commit in parallel while a reader pages: every event is seen exactly once,
    in the order of the final feed."""
    writers = 6
    per_writer = 8
    seen: list[dict] = []
    done = asyncio.Event()

    async def write(n: int) -> None:
        for i in range(per_writer):
            await grant(client, f"w-{n}", duration=f"P{i + 1}D")

    async def read() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            status, page = await feed(client, cursor, limit=3)
            assert status == 200
            seen.extend(page["events"])
            cursor = page["next_cursor"]
            if finished and not page["events"]:
                return

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(n) for n in range(writers)))
    done.set()
    await asyncio.wait_for(reader, timeout=60)
    final = await drain(client, limit=1000)
    assert len(final) == writers * per_writer
    assert [e["id"] for e in seen] == [e["id"] for e in final]  # no skip, no repeat
    for n in range(writers):
        mine = [e["sequence"] for e in final if e["app_user_id"] == f"w-{n}"]
        assert mine == list(range(1, per_writer + 1))


@pytest.mark.parametrize(
    ("after", "limit"),
    [
        ("nope", None),
        ("e1.!!", None),
        (encode_cursor(5)[:-1] + "x", None),
        (None, 0),
        (None, 1001),
        (None, "ten"),
        (None, -1),
    ],
)
async def test_bad_cursor_or_limit_is_400(client, after, limit) -> None:
    status, body = await feed(client, after, limit)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_limit_bounds(client) -> None:
    for n in range(3):
        await grant(client, f"u-{n}")
    assert len((await feed(client, limit=1))[1]["events"]) == 1
    assert len((await feed(client, limit=1000))[1]["events"]) == 3
    assert len((await feed(client))[1]["events"]) == 3  # default 100


async def test_who_may_read_the_feed(client) -> None:
    assert (await feed(client, key=READER_KEY))[0] == 200
    assert (await feed(client, key=ADMIN_KEY))[0] == 200
    assert (await feed(client, key=WRITER_KEY))[0] == 403
    token = user_token("u-1")
    resp = await client.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403  # a user may not read everyone's changes
    assert (await client.get("/v1/events")).status == 401
