"""Erasure reaches the cache (issue 18, attack 4; contract §3 `DELETE /v1/customers/{id}`:
"no key or value in Redis names the id"), and every cache key carries a TTL. The whole Redis
keyspace is read back, every key and every value, not just the keys the code is known to
write: a new kind of key that names a person fails here."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis

from tests.conftest import ADMIN_KEY, READER_KEY, auth

GRANTS = "/v1/customers/{}/entitlements/premium/grants"


async def everything(client: aredis.Redis) -> list[tuple[bytes, bytes, int]]:
    """(key, its value serialised by Redis, its TTL in ms) for every key of the database."""
    found = []
    async for key in client.scan_iter(count=1000):
        value = await client.dump(key)
        ttl = await client.pttl(key)
        if value is not None:
            found.append((key, value, ttl))
    return found


def naming(cells: list[tuple[bytes, bytes, int]], *ids: str) -> list[bytes]:
    needles = [i.encode() for i in ids]
    return [key for key, value, _ in cells if any(n in key or n in value for n in needles)]


async def call(app, method: str, path: str, key: str = ADMIN_KEY, **kw: Any) -> tuple[int, Any]:
    resp = await app.request(method, path, headers=auth(key), **kw)
    return resp.status, await resp.json()


async def test_erasure_leaves_no_key_or_value_naming_the_person(client, redis_client) -> None:
    user, alias = "erase-me-7f3a", "erase-me-alias-19c2"
    assert (await call(client, "POST", GRANTS.format(user), json={"duration": "P1M"}))[0] == 201
    merged = await call(client, "POST", f"/v1/customers/{user}/aliases", json={"alias": alias})
    assert merged[0] == 200
    for who in (user, alias, user, alias):  # cached, and served from the cache
        status, body = await call(client, "GET", f"/v1/customers/{who}", READER_KEY)
        assert (status, body["app_user_id"]) == (200, user)
    assert (await call(client, "DELETE", f"/v1/customers/{alias}"))[1] == {"erased": True}

    assert naming(await everything(redis_client), user, alias) == []
    for who in (user, alias):  # read again: unknown, and still nothing names them
        status, body = await call(client, "GET", f"/v1/customers/{who}", READER_KEY)
        assert (status, body["app_user_id"], body["entitlements"]) == (200, who, {})
    assert naming(await everything(redis_client), user, alias) == []


async def test_the_cache_names_nobody_even_before_erasure(client, redis_client) -> None:
    """Keys are one-way digests and cached answers leave out the id read: a dump of Redis
    (its RDB file, a replica) holds no customer ids to begin with."""
    await call(client, "POST", GRANTS.format("u-plain-5b1e"), json={})
    await call(client, "GET", "/v1/customers/u-plain-5b1e", READER_KEY)
    await call(client, "GET", "/v1/customers/u-plain-5b1e", READER_KEY)
    cells = await everything(redis_client)
    assert cells  # something is cached
    assert naming(cells, "u-plain-5b1e") == []


async def test_every_cache_key_expires(client, redis_client) -> None:
    for n in range(3):
        await call(client, "POST", GRANTS.format(f"u-{n}"), json={"duration": "P1M"})
        await call(client, "GET", f"/v1/customers/u-{n}", READER_KEY)
        await call(client, "POST", f"/v1/customers/u-{n}/suspend", json={})
        await call(client, "GET", f"/v1/customers/u-{n}", READER_KEY)
    await call(client, "DELETE", "/v1/customers/u-0")
    await client.get("/v1/customers/u-1", headers=auth("not-a-valid-key-000000"))
    cells = await everything(redis_client)
    assert cells
    assert [key for key, _, ttl in cells if ttl < 0] == []
