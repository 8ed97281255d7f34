"""Cross-process invalidation of the in-process read caches (cache/local.py).

**Why Redis pub/sub, not RESP3 client-side tracking.** Tracking invalidates the keys a
connection has read; but a local hit is served without reading any Redis key, and a miss
served from PostgreSQL (Redis skipped, or the record not cached there) reads none either, so
tracking would not cover what this cache holds. Tracking would also need RESP3 and a
redirect connection per process. Pub/sub says exactly what the writers know, "customer X
changed", to every process (workers of one host and replicas alike), in the same pipeline
that bumps the customer's Redis generation (cache/answers.py). Writers publish the ids
(newline-separated; app user ids have no newline) or `*` after an epoch bump (every cached
answer may be stale).

**When Redis is away.** Pub/sub delivers at most once: a process whose subscription is
down misses what is published meanwhile. So the local cache serves only while the
subscription is confirmed and answering: this listener pings the channel every
`PING_SECONDS` and, when the connection fails or no answer came for `STALE_SECONDS`, it
disables and empties the local cache, then resubscribes (after `RETRY_SECONDS`, doubling up to
`MAX_RETRY_SECONDS` while Redis refuses) and empties
it again once subscribed. Reads meanwhile go to Redis / PostgreSQL as before, with that
cache's own guarantees. The staleness a local entry can add is therefore bounded by about
`STALE_SECONDS` for a silently dead connection, and by `redis.cache_ttl_seconds` in the
case nothing can detect (a writer cut off from Redis while this process still reaches it;
its epoch bump publishes `*` once it reaches Redis again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

import redis.asyncio as aredis
import structlog

from cache.local import LocalReads
from runtime.background import BackgroundTask

log = structlog.get_logger(__name__)

CHANNEL = "receiptd:v1:changed"
EVERYONE = "*"
PING_SECONDS = 1.0
STALE_SECONDS = 3.0
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


def message_for(app_user_ids: Iterable[str]) -> str:
    """The channel message naming these customers (one id a line, sorted)."""
    return "\n".join(sorted(set(app_user_ids)))


class InvalidationListener:
    """Keeps `local` coherent with the channel; `start` / `aclose` run its task."""

    def __init__(self, client: aredis.Redis, local: LocalReads) -> None:
        self._redis = client
        self._local = local
        self._task = BackgroundTask("cache-invalidation", self._run)
        self._healthy = asyncio.Event()

    def start(self) -> None:
        """Listen from now on (idempotent); `wait_subscribed` tells when it does."""
        self._task.start()

    async def wait_subscribed(self, seconds: float) -> bool:
        """True once the channel is confirmed (tests, start-up)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._healthy.wait(), seconds)
        return self._healthy.is_set()

    async def aclose(self) -> None:
        """Stop listening; the local cache is off from here (every read asks Redis)."""
        self._disable()
        await self._task.stop()

    async def _run(self) -> None:
        warned = False
        delay = RETRY_SECONDS
        while True:
            try:
                await self._listen()
            except (aredis.RedisError, OSError, TimeoutError) as exc:
                if not warned:
                    log.warning("invalidation_channel_lost", error=type(exc).__name__)
                warned = True
            else:
                warned = False
            # Back off while Redis refuses (a wrong password must not mean 2 reconnects a
            # second for months); from the start again once a subscription held.
            delay = RETRY_SECONDS if self._healthy.is_set() else min(delay * 2, MAX_RETRY_SECONDS)
            self._disable()
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            last_heard = time.monotonic()
            last_ping = last_heard
            while True:
                message = await pubsub.get_message(timeout=PING_SECONDS)
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    self._handle(message)
                elif now - last_heard > STALE_SECONDS:
                    raise TimeoutError("no answer on the invalidation channel")
                if now - last_ping >= PING_SECONDS:
                    last_ping = now
                    await pubsub.ping()
        finally:
            with contextlib.suppress(aredis.RedisError, OSError, TimeoutError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._local.clear()  # whatever was published before this is unknown
            self._local.enabled = True
            self._healthy.set()
            log.info("invalidation_channel_subscribed")
        elif kind == "message":
            data = message.get("data")
            text = data.decode() if isinstance(data, bytes) else str(data)
            if text == EVERYONE:
                self._local.clear()
            else:
                self._local.drop(text.split("\n"))

    def _disable(self) -> None:
        self._healthy.clear()
        self._local.enabled = False
        self._local.clear()
