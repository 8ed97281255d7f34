"""Start and stop under load with a wrong Redis password, again and again (issue 25, point 5):
one such stop hung past `shutdown_timeout` and the worker was SIGKILLed. Each SIGTERM must
end the process well within its shutdown timeout, with exit code 0, however long the cache
has been failing."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aredis

from server.embedded import EmbeddedRedis
from tests.drills.served import in_background
from tests.drills.test_process_stops import launch, served, served_config  # noqa: F401

ROUNDS = 3
SHUTDOWN_TIMEOUT = 10  # served_config's


@pytest.fixture
async def guarded_redis(tmp_path_factory) -> AsyncIterator[str]:
    """A Redis that requires a password the service is not given."""
    embedded = EmbeddedRedis(Path(tmp_path_factory.mktemp("rcd-stop")))
    url = await embedded.start()
    client = aredis.Redis.from_url(url)
    await client.config_set("requirepass", "not-the-services")
    await client.aclose()
    yield url
    await embedded.stop()


async def hammer(url: str, until: asyncio.Event) -> int:
    """Requests, 8 at a time, until `until` is set; how many were answered."""
    answered = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def one() -> None:
            nonlocal answered
            while not until.is_set():
                try:
                    async with session.get(f"{url}/readyz") as resp:
                        await resp.read()
                        answered += 1
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.05)  # the process is going away

        await asyncio.gather(*(one() for _ in range(8)))
    return answered


async def test_sigterm_with_a_failing_cache_never_hangs(
    served,  # noqa: F811
    database_url,
    guarded_redis,
    tmp_path,
) -> None:
    cfg = served_config(database_url, f"{guarded_redis}?password=wrong", tmp_path)
    for round_ in range(ROUNDS):
        (tmp_path / f"round-{round_}").mkdir()
        server = launch(cfg, tmp_path / f"round-{round_}", served)
        await server.wait_ready()
        stop = asyncio.Event()
        load = in_background(hammer(server.url, stop))
        await asyncio.sleep(1.5 + round_)  # the cache fails and retries meanwhile
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = await server.wait_exit(SHUTDOWN_TIMEOUT + 5)
        took = time.monotonic() - started
        stop.set()
        assert await load > 0
        assert code == 0, server.output()[-2000:]
        assert took < SHUTDOWN_TIMEOUT, f"round {round_}: SIGTERM took {took:.1f} s"
    assert "cache_down" in server.output()  # the cache really was failing
