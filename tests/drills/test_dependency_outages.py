"""Drills: PostgreSQL and Redis stopped and started again under a running service.

- PostgreSQL down: webhooks 503 (the store retries, nothing is acknowledged), reads of a
  cached customer still answer from Redis and uncached ones 503, `/readyz` 503 while
  `/healthz` stays 200; PostgreSQL back: the same process is ready again and the store's
  retry is processed, without a restart.
- Redis down and back: every answer stays correct, and a write made while Redis was away
  is not hidden by a record cached before the outage, although Redis reloads that record
  from its dump: the writer bumps the cache epoch once Redis answers (in the background,
  without traffic), and a replica that lost its connection does the same before serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient

from api.keys import CACHE
from cache.answers import RedisCustomerCache, answer_key
from config.settings import Settings
from server.app import create_app
from tests.conftest import READER_KEY, auth, base_config
from tests.drills.conftest import Drilled, fresh_database
from tests.e2e.apple_helpers import apple_config, scenario
from tests.e2e.test_apple_webhook import apple_ca

__all__ = ["apple_ca"]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    """Poll `check` until it is true (a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)


async def read(client: TestClient, user: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    return resp.status, await resp.json()


async def journal(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT message_id, result FROM store_notifications ORDER BY id")
        return [(r["message_id"], r["result"]) for r in rows]
    finally:
        await conn.close()


@pytest.fixture
async def drill_database(drill_postgres: Drilled) -> str:
    return await fresh_database(drill_postgres.url)


async def test_postgres_down_then_back_without_a_restart(
    drill_postgres, drill_database, redis_url, aiohttp_client, apple_ca, clock, tmp_path
) -> None:
    cfg = apple_config(base_config(drill_database, redis_url, tmp_path), apple_ca[1])
    client = await aiohttp_client(create_app(Settings(**cfg), clock=clock))
    cached, uncached = scenario(apple_ca[0]), scenario(apple_ca[0])
    for s in (cached, uncached):
        resp = await client.post("/webhooks/apple", json=s.body("subscribe", clock.now))
        assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    clock.advance(days=30)  # the period ended; Apple's renewal is on its way
    renewal = cached.body("renew", clock.now)
    status, before = await read(client, cached.state.user)  # now cached in Redis
    assert status == 200
    assert before["entitlements"]["premium"]["status"] == "expired"

    await drill_postgres.stop()
    try:
        resp = await client.post("/webhooks/apple", json=renewal)
        assert resp.status == 503  # Apple retries; nothing was stored
        assert (await resp.json())["error"]["code"] == "database_unavailable"
        # A cached customer is still answered (the record as it was before the outage)…
        assert await read(client, cached.state.user) == (200, before)
        # …an uncached one is a 503, never a wrong "no entitlement".
        status, body = await read(client, uncached.state.user)
        assert (status, body["error"]["code"]) == (503, "database_unavailable")
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200
    finally:
        await drill_postgres.start()

    # Recovery without a restart of the service: ready again, and Apple's retry is applied.
    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready)
    resp = await client.post("/webhooks/apple", json=renewal)
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    status, after = await read(client, cached.state.user)
    assert status == 200
    premium, old = after["entitlements"]["premium"], before["entitlements"]["premium"]
    assert premium["active"] is True
    assert premium["expires_at"] > old["expires_at"]  # the renewal shows: cache invalidated
    assert (await read(client, uncached.state.user))[0] == 200
    assert [result for _, result in await journal(drill_database)] == ["processed"] * 3


async def test_redis_down_and_back_loses_no_invalidation(
    drill_redis, database_url, aiohttp_client, apple_ca, clock, tmp_path
) -> None:
    """Three replicas on one database and one Redis: `writer` ingests while Redis is away,
    `reader` serves reads during the outage, `late` starts its reads only after it."""
    cfg = apple_config(base_config(database_url, drill_redis.url, tmp_path), apple_ca[1])
    settings = Settings(**cfg)
    writer, reader, late = [
        await aiohttp_client(create_app(settings, clock=clock)) for _ in range(3)
    ]
    s = scenario(apple_ca[0])
    user = s.state.user
    resp = await writer.post("/webhooks/apple", json=s.body("subscribe", clock.now))
    assert (await resp.json()) == {"status": "processed"}
    for client in (writer, reader, late):  # every replica reads it: cached in Redis
        status, body = await read(client, user)
        assert (status, body["entitlements"]["premium"]["status"]) == (200, "active")
    probe = aredis.Redis.from_url(drill_redis.url)
    try:
        assert await probe.exists(answer_key(user)) == 1
        epoch_before = int(await probe.get("receiptd:v1:epoch") or 0)
    finally:
        await probe.aclose()
    clock.advance(days=1)
    refund = s.body("refund", clock.now)

    await drill_redis.stop()  # SIGTERM: Redis saves its dataset, cached record included
    try:
        resp = await writer.post("/webhooks/apple", json=refund)
        assert (resp.status, await resp.json()) == (200, {"status": "processed"})
        assert writer.app[CACHE].epoch_owed  # the invalidation could not be delivered
        # Reads during the outage come from PostgreSQL: correct, on every replica.
        for client in (writer, reader):
            status, body = await read(client, user)
            assert (status, body["entitlements"]["premium"]["status"]) == (200, "revoked")
        # A replica that lost its connection owes the bump as well: until it is made, it
        # reads nothing from Redis (so it cannot serve the pre-outage record either).
        assert reader.app[CACHE].epoch_owed
    finally:
        await drill_redis.start()

    probe = aredis.Redis.from_url(drill_redis.url)
    try:
        # Redis is back with its dump, holding the record cached before the refund.
        assert await probe.exists(answer_key(user)) == 1
        # The writer bumps the epoch in the background, with no request to trigger it.
        writer_cache = writer.app[CACHE]
        assert isinstance(writer_cache, RedisCustomerCache)

        async def writer_repaired() -> bool:
            return not writer_cache.epoch_owed

        await eventually(writer_repaired, seconds=10)
        # a new epoch (random, so that one that expired and comes back matches nothing)
        assert int(await probe.get("receiptd:v1:epoch") or 0) not in (0, epoch_before)
        # Every replica is correct now, the one that saw nothing of the outage included,
        # and the record is cached again (under the new epoch).
        for client in (late, late, reader, writer):
            status, body = await read(client, user)
            assert (status, body["entitlements"]["premium"]["status"]) == (200, "revoked")
        assert await probe.exists(answer_key(user)) == 1
    finally:
        await probe.aclose()
