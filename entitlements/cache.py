"""Redis cache of customer records: a cache only, never the truth (that is PostgreSQL).

Each customer has a generation counter that writers bump (after commit) when they
invalidate. A cached record carries the generation it was read under and is served only
while that generation is current, so a reader racing a writer can never re-install a
stale record. Redis failures degrade to "miss": logged, never raised; after a failure
Redis is skipped for a short while so a dead Redis does not add latency to every request.

Invalidations are not lost across a Redis outage. A writer whose invalidation failed (or was
skipped while Redis was away) cannot know which records other processes cached before the
write, nor can it tell Redis; so, as soon as Redis answers again, it bumps one global epoch
that every cached record also carries: every record cached before is then a miss, in every
process. Until the epoch is bumped this process reads nothing from Redis, and a background
retry bumps it even if no request comes. A process that lost its connection to Redis (not a
mere timeout) does the same, so a replica that served reads during an outage never serves a
record cached before it. What is left is bounded by `redis.cache_ttl_seconds`: a writer that
dies, or stays cut off from Redis while other processes still reach it, bumps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aredis
import structlog
from redis.exceptions import TimeoutError as RedisTimeout

from entitlements.access import CustomerRecord
from entitlements.codec import from_jsonable, to_jsonable
from entitlements.invalidation import CHANNEL, EVERYONE, message_for
from entitlements.local_cache import LocalReads

log = structlog.get_logger(__name__)

_PREFIX = "receiptd:v1:"
_EPOCH_KEY = f"{_PREFIX}epoch"
_BACKOFF_SECONDS = 5.0
_REPAIR_INTERVAL_SECONDS = 0.5

# What a cached record must match to be served: (the customer's generation, the epoch).
Version = tuple[int, int]


class CustomerCache(Protocol):
    """What the service needs from a cache."""

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, Version | None]:
        """(record or None, version to pass to `put`; None = do not cache)."""

    async def put(self, record: CustomerRecord, version: Version) -> None: ...

    async def invalidate(self, app_user_ids: Iterable[str]) -> None: ...


class NoCache:
    """`[redis] url = "off"`: every read goes to PostgreSQL."""

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, Version | None]:
        return None, None

    async def put(self, record: CustomerRecord, version: Version) -> None:
        return None

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        return None


class RedisCustomerCache:
    """The Redis implementation of CustomerCache. `aclose` stops its background retry."""

    def __init__(
        self,
        client: aredis.Redis,
        ttl_seconds: int,
        *,
        repair_interval: float = _REPAIR_INTERVAL_SECONDS,
        local: LocalReads | None = None,
    ) -> None:
        self._redis = client
        self._local = local
        self._ttl = ttl_seconds
        self._down_until = 0.0
        self._repair_interval = repair_interval
        # Set when an invalidation may be lost (or the connection was): nothing is read from
        # Redis until the epoch is bumped.
        self._epoch_owed = False
        self._repair: asyncio.Task[None] | None = None

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, Version | None]:
        if self._skipping() or (self._epoch_owed and not await self._bump_epoch()):
            return None, None
        try:
            raw, gen, epoch = await self._redis.mget(
                _record_key(app_user_id), _gen_key(app_user_id), _EPOCH_KEY
            )
        except (aredis.RedisError, OSError) as exc:
            self._failed("get", exc)
            return None, None
        version = (int(gen or 0), int(epoch or 0))
        if raw is not None:
            entry = json.loads(raw)
            if (entry.get("g"), entry.get("e", 0)) == version:
                return from_jsonable(CustomerRecord, entry["r"]), None
        return None, version

    async def put(self, record: CustomerRecord, version: Version) -> None:
        if self._skipping() or self._epoch_owed:
            return
        generation, epoch = version
        entry = json.dumps({"g": generation, "e": epoch, "r": to_jsonable(record)})
        try:
            await self._redis.set(_record_key(record.app_user_id), entry, ex=self._ttl)
        except (aredis.RedisError, OSError) as exc:
            self._failed("put", exc)

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        ids = sorted(set(app_user_ids))
        if not ids:
            return
        if self._local is not None:
            self._local.drop(ids)  # this process at once; the others by the channel below
        if self._skipping():
            self._owe_epoch()  # Redis is away: the epoch bump will cover these ids
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for app_user_id in ids:
                    pipe.incr(_gen_key(app_user_id))
                    pipe.delete(_record_key(app_user_id))
                pipe.publish(CHANNEL, message_for(ids))
                await pipe.execute()
        except (aredis.RedisError, OSError) as exc:
            self._failed("invalidate", exc)
            self._owe_epoch()

    async def aclose(self) -> None:
        """Stop the background epoch retry (the client is closed by its owner)."""
        task, self._repair = self._repair, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def epoch_owed(self) -> bool:
        """True while a lost invalidation waits for Redis to answer again."""
        return self._epoch_owed

    def _owe_epoch(self) -> None:
        self._epoch_owed = True
        if self._repair is None or self._repair.done():
            self._repair = asyncio.get_running_loop().create_task(self._repair_loop())

    async def _repair_loop(self) -> None:
        while self._epoch_owed:
            await asyncio.sleep(self._repair_interval)
            await self._bump_epoch()

    async def _bump_epoch(self) -> bool:
        """Make every record cached so far a miss, everywhere; False while Redis is away."""
        try:
            epoch = await self._redis.incr(_EPOCH_KEY)
            if self._epoch_owed:  # every process's answers may be stale too
                await self._redis.publish(CHANNEL, EVERYONE)
        except (aredis.RedisError, OSError):
            return False
        if self._epoch_owed:
            self._epoch_owed = False
            self._down_until = 0.0
            log.info("cache_epoch_bumped", epoch=epoch)
        return True

    def _skipping(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _BACKOFF_SECONDS
        log.warning("cache_unavailable", operation=operation, error=type(exc).__name__)
        if not isinstance(exc, RedisTimeout | TimeoutError):
            # The connection was lost: a write elsewhere may have missed its invalidation.
            self._owe_epoch()


def _record_key(app_user_id: str) -> str:
    return f"{_PREFIX}customer:{app_user_id}"


def _gen_key(app_user_id: str) -> str:
    return f"{_PREFIX}gen:{app_user_id}"
