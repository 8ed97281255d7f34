"""The Redis answer cache against a real Redis (cache/answers.py): versions, the
conditional store that keeps a racing read from installing an answer from before a write or
an erasure, expiry of every key, and the one-off removal of the keys earlier versions named
by customer id."""

from __future__ import annotations

import redis.asyncio as aredis

from cache.answers import RedisCustomerCache

TTL = 300


async def test_answer_round_trip_under_its_version(redis_client: aredis.Redis) -> None:
    cache = RedisCustomerCache(redis_client, TTL)
    raw, version = await cache.get_answer("u-1")
    assert (raw, version) == (None, (0, 0))
    await cache.put_answer("u-1", b"answer", version)
    assert await cache.get_answer("u-1") == (b"answer", version)
    keys = [k async for k in redis_client.scan_iter()]
    assert all(b"u-1" not in k for k in keys)
    await cache.aclose()


async def test_a_read_racing_an_invalidation_stores_nothing(redis_client: aredis.Redis) -> None:
    """read version → (the write commits and invalidates) → put the answer read before: it
    must not be stored, or it would be served as current (or name an erased person)."""
    cache = RedisCustomerCache(redis_client, TTL)
    _, before = await cache.get_answer("u-1")
    await cache.invalidate(["u-1"])
    await cache.put_answer("u-1", b"stale", before)
    raw, after = await cache.get_answer("u-1")
    assert raw is None
    assert after != before
    assert [k async for k in redis_client.scan_iter("receiptd:v1:a:*")] == []
    await cache.put_answer("u-1", b"fresh", after)
    assert (await cache.get_answer("u-1"))[0] == b"fresh"
    await cache.aclose()


async def test_generations_and_answers_expire(redis_client: aredis.Redis) -> None:
    cache = RedisCustomerCache(redis_client, TTL)
    await cache.invalidate(["u-1"])
    _, version = await cache.get_answer("u-1")
    await cache.put_answer("u-1", b"x", version)
    ttls = {k: await redis_client.ttl(k) async for k in redis_client.scan_iter()}
    assert len(ttls) == 2
    assert all(0 < ttl <= 2 * TTL for ttl in ttls.values()), ttls
    await cache.aclose()


async def test_an_epoch_bump_misses_everything_cached_before(redis_client: aredis.Redis) -> None:
    cache = RedisCustomerCache(redis_client, TTL)
    _, version = await cache.get_answer("u-1")
    await cache.put_answer("u-1", b"x", version)
    assert await cache._bump_epoch()
    raw, bumped = await cache.get_answer("u-1")
    assert raw is None
    assert bumped[1] not in (0, version[1])
    assert await redis_client.ttl("receiptd:v1:epoch") > 0
    await cache.aclose()


async def test_legacy_keys_named_by_id_are_swept_once(redis_client: aredis.Redis) -> None:
    for n in range(2500):
        await redis_client.set(f"receiptd:v1:gen:u-{n}", 3)  # no expiry, as they were
    await redis_client.set("receiptd:v1:answer:u-1", b"old", ex=TTL)
    await redis_client.set("other:app:key", 1)
    cache = RedisCustomerCache(redis_client, TTL)
    assert await cache.sweep_legacy_keys(batch=1000) == 2501
    assert [k async for k in redis_client.scan_iter("receiptd:v1:gen:*")] == []
    assert await redis_client.get("other:app:key") == b"1"  # not ours: untouched
    await redis_client.set("receiptd:v1:gen:u-late", 1)
    assert await cache.sweep_legacy_keys() == 0  # once (the marker expires in 30 days)
    await cache.aclose()


async def test_an_invalidation_deletes_the_legacy_keys_of_its_ids(
    redis_client: aredis.Redis,
) -> None:
    await redis_client.set("receiptd:v1:gen:u-1", 3)
    await redis_client.set("receiptd:v1:answer:u-1", b"old", ex=TTL)
    cache = RedisCustomerCache(redis_client, TTL)
    await cache.invalidate(["u-1"])
    assert await redis_client.exists("receiptd:v1:gen:u-1", "receiptd:v1:answer:u-1") == 0
    await cache.aclose()
