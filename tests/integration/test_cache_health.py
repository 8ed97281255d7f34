"""A broken cache you can see (issue 25): with a wrong Redis password the service stays ready
and correct from PostgreSQL, and says so — `/readyz` names the reason, `receiptd_cache_up` is
0 within seconds, and with `redis.required = true` readiness fails. A real Redis that asks for
a password, started for this test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from config.settings import Settings
from server.app import create_app
from server.embedded import EmbeddedRedis
from tests.conftest import READER_KEY, auth

PASSWORD = "the-right-password"


@pytest.fixture
async def guarded_redis(tmp_path_factory) -> AsyncIterator[str]:
    """The unix URL of a Redis that requires PASSWORD (no credentials in the URL)."""
    embedded = EmbeddedRedis(Path(tmp_path_factory.mktemp("rcd-pw")))
    url = await embedded.start()
    client = aredis.Redis.from_url(url)
    await client.config_set("requirepass", PASSWORD)
    await client.aclose()
    yield url
    await embedded.stop()


async def metric(client) -> str:
    text = await (await client.get("/metrics")).text()
    return next(line for line in text.splitlines() if line.startswith("receiptd_cache_up "))


async def test_a_wrong_redis_password_shows_in_readyz_and_metrics(
    config, guarded_redis, aiohttp_client
) -> None:
    config["redis"] = {"url": f"{guarded_redis}?password=wrong"}
    client = await aiohttp_client(create_app(Settings(**config)))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200
    assert (body["status"], body["cache"]) == ("ready", "down")
    assert "invalid username-password pair" in body["cache_reason"]
    assert await metric(client) == "receiptd_cache_up 0.0"
    # Reads still answer, from PostgreSQL.
    assert (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).status == 200


async def test_a_required_redis_lost_while_serving_fails_readiness(
    config, guarded_redis, aiohttp_client
) -> None:
    """With `redis.required`, a Redis that stops answering makes /readyz 503 within seconds
    (at start-up it would stop the service: tests/integration/test_startup_failures.py)."""
    config["redis"] = {"url": f"{guarded_redis}?password={PASSWORD}", "required": True}
    client = await aiohttp_client(create_app(Settings(**config)))
    assert (await client.get("/readyz")).status == 200
    admin = aredis.Redis.from_url(f"{guarded_redis}?password={PASSWORD}")
    await admin.config_set("requirepass", "rotated-elsewhere")  # the service's is now wrong
    await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")  # drop its connections
    await admin.aclose()
    deadline = asyncio.get_running_loop().time() + 15
    while (resp := await client.get("/readyz")).status != 503:
        assert asyncio.get_running_loop().time() < deadline, await resp.text()
        await asyncio.sleep(0.2)
    body = await resp.json()
    assert body["error"]["code"] == "cache_unavailable"
    assert "rotated" not in body["error"]["message"]  # the reason, never a password
    assert await metric(client) == "receiptd_cache_up 0.0"


async def test_the_right_password_reads_up(config, guarded_redis, aiohttp_client) -> None:
    config["redis"] = {"url": f"{guarded_redis}?password={PASSWORD}", "required": True}
    client = await aiohttp_client(create_app(Settings(**config)))
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})
    assert await metric(client) == "receiptd_cache_up 1.0"
