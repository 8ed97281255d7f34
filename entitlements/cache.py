"""Redis cache of customer records: a cache only, never the truth (that is PostgreSQL).

Each customer has a generation counter that writers bump (after commit) when they
invalidate. A cached record carries the generation it was read under and is served only
while that generation is current, so a reader racing a writer can never re-install a
stale record. Redis failures degrade to "miss": logged, never raised; after a failure
Redis is skipped for a short while so a dead Redis does not add latency to every request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aredis
import structlog

from entitlements.access import CustomerRecord
from entitlements.codec import from_jsonable, to_jsonable

log = structlog.get_logger(__name__)

_PREFIX = "receiptd:v1:"
_BACKOFF_SECONDS = 5.0


class CustomerCache(Protocol):
    """What the service needs from a cache."""

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, int | None]:
        """(record or None, generation to pass to `put`; None = do not cache)."""

    async def put(self, record: CustomerRecord, generation: int) -> None: ...

    async def invalidate(self, app_user_ids: Iterable[str]) -> None: ...


class NoCache:
    """`[redis] url = "off"`: every read goes to PostgreSQL."""

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, int | None]:
        return None, None

    async def put(self, record: CustomerRecord, generation: int) -> None:
        return None

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        return None


class RedisCustomerCache:
    """The Redis implementation of CustomerCache."""

    def __init__(self, client: aredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._down_until = 0.0

    async def get(self, app_user_id: str) -> tuple[CustomerRecord | None, int | None]:
        if self._skipping():
            return None, None
        try:
            raw, gen = await self._redis.mget(_record_key(app_user_id), _gen_key(app_user_id))
        except (aredis.RedisError, OSError) as exc:
            self._failed("get", exc)
            return None, None
        generation = int(gen or 0)
        if raw is not None:
            entry = json.loads(raw)
            if entry.get("g") == generation:
                return from_jsonable(CustomerRecord, entry["r"]), None
        return None, generation

    async def put(self, record: CustomerRecord, generation: int) -> None:
        if self._skipping():
            return
        entry = json.dumps({"g": generation, "r": to_jsonable(record)})
        try:
            await self._redis.set(_record_key(record.app_user_id), entry, ex=self._ttl)
        except (aredis.RedisError, OSError) as exc:
            self._failed("put", exc)

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        ids = sorted(set(app_user_ids))
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for app_user_id in ids:
                    pipe.incr(_gen_key(app_user_id))
                    pipe.delete(_record_key(app_user_id))
                await pipe.execute()
        except (aredis.RedisError, OSError) as exc:
            # The TTL bounds how long a record cached before this write can be served.
            self._failed("invalidate", exc)

    def _skipping(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _BACKOFF_SECONDS
        log.warning("cache_unavailable", operation=operation, error=type(exc).__name__)


def _record_key(app_user_id: str) -> str:
    return f"{_PREFIX}customer:{app_user_id}"


def _gen_key(app_user_id: str) -> str:
    return f"{_PREFIX}gen:{app_user_id}"
