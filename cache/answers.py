"""Redis cache of the customers' rendered answers (the bytes the read API serves, with their
ETag and how long they hold: cache/render.py): a cache only, never the truth (that
is PostgreSQL). A hit is one MGET and one orjson decode: no domain objects are rebuilt.

Each customer has a generation counter that writers bump (after commit) when they
invalidate. A cached answer carries the generation it was rendered under and is served only
while that generation is current, so a reader racing a writer can never re-install a
stale answer. Redis failures degrade to "miss": logged, never raised; after a failure
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
import hashlib
import secrets
import time
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aredis
import structlog
from redis.exceptions import TimeoutError as RedisTimeout

from cache.invalidation import CHANNEL, EVERYONE, message_for
from cache.local import LocalReads
from runtime.background import BackgroundTask

log = structlog.get_logger(__name__)

_PREFIX = "receiptd:v1:"
_EPOCH_KEY = f"{_PREFIX}epoch"
_LEGACY_PATTERNS = (f"{_PREFIX}answer:*", f"{_PREFIX}gen:*")
_LEGACY_SWEPT_KEY = f"{_PREFIX}legacy-keys-swept"
_BACKOFF_SECONDS = 5.0
_REPAIR_INTERVAL_SECONDS = 0.5
_EPOCH_MIN_TTL_SECONDS = 86_400

# Store an answer only under the version it was rendered for: KEYS = answer, generation,
# epoch; ARGV = generation, epoch, the value, its TTL in ms.
_PUT_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1]
   and (redis.call('GET', KEYS[3]) or '0') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
"""

# What a cached record must match to be served: (the customer's generation, the epoch).
Version = tuple[int, int]


class CustomerCache(Protocol):
    """What the service needs from a cache."""

    async def get_answer(self, app_user_id: str) -> tuple[bytes | None, Version | None]:
        """(the rendered answer stored under the current version or None, the version to
        pass to `put_answer`; None = do not cache)."""

    async def put_answer(self, app_user_id: str, answer: bytes, version: Version) -> None:
        """Store `answer` unless the customer changed since `version` was read."""
        ...

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        """Make every cached answer of these customers a miss, here and in every process."""
        ...


class NoCache:
    """`[redis] url = "off"`: every read goes to PostgreSQL."""

    async def get_answer(self, app_user_id: str) -> tuple[bytes | None, Version | None]:
        """Always a miss, and nothing to store."""
        return None, None

    async def put_answer(self, app_user_id: str, answer: bytes, version: Version) -> None:
        """Nothing is kept."""
        return

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        """Nothing to invalidate."""
        return


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
        self._gen_ttl_ms = 2 * ttl_seconds * 1000
        self._epoch_ttl_ms = max(_EPOCH_MIN_TTL_SECONDS, 2 * ttl_seconds) * 1000
        self._put_if_current = client.register_script(_PUT_IF_CURRENT)
        self._down_until = 0.0
        self._repair_interval = repair_interval
        # Set when an invalidation may be lost (or the connection was): nothing is read from
        # Redis until the epoch is bumped.
        self._epoch_owed = False
        self._repair = BackgroundTask("cache-epoch-repair", self._repair_loop)

    async def get_answer(self, app_user_id: str) -> tuple[bytes | None, Version | None]:
        """The rendered answer (cache/render.py) under the same generation and epoch
        rules as records: one MGET, no decoding here."""
        if self._skipping() or (self._epoch_owed and not await self._bump_epoch()):
            return None, None
        digest = _digest(app_user_id)
        try:
            raw, gen, epoch = await self._redis.mget(
                _answer_key(digest), _gen_key(digest), _EPOCH_KEY
            )
        except (aredis.RedisError, OSError) as exc:
            self._failed("get", exc)
            return None, None
        version = (int(gen or 0), int(epoch or 0))
        if isinstance(raw, bytes) and raw[:_VERSION_BYTES] == _version_prefix(version):
            return raw[_VERSION_BYTES:], version
        return None, version

    async def put_answer(self, app_user_id: str, answer: bytes, version: Version) -> None:
        """Store `answer` with a TTL by compare-and-set: only while the customer's generation
        and the epoch are still `version` (a read racing a change or an erasure stores
        nothing). Redis away: logged and skipped."""
        if self._skipping() or self._epoch_owed:
            return
        digest = _digest(app_user_id)
        try:
            await self._put_if_current(
                keys=[_answer_key(digest), _gen_key(digest), _EPOCH_KEY],
                args=[*version, _version_prefix(version) + answer, self._ttl * 1000],
            )
        except (aredis.RedisError, OSError) as exc:
            self._failed("put", exc)

    async def invalidate(self, app_user_ids: Iterable[str]) -> None:
        """Bump the customers' generations (their answers become misses everywhere) and tell
        the other processes' local caches; when Redis is away, every answer is made a miss
        once it answers again (the epoch)."""
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
                    digest = _digest(app_user_id)
                    pipe.incr(_gen_key(digest))
                    pipe.pexpire(_gen_key(digest), self._gen_ttl_ms)
                    pipe.delete(_answer_key(digest), *_legacy_keys(app_user_id))
                pipe.publish(CHANNEL, message_for(ids))
                await pipe.execute()
        except (aredis.RedisError, OSError) as exc:
            self._failed("invalidate", exc)
            self._owe_epoch()

    async def aclose(self) -> None:
        """Stop the background epoch retry (the client is closed by its owner)."""
        await self._repair.stop()

    async def sweep_legacy_keys(self, batch: int = 1000) -> int:
        """Delete the keys earlier versions named by customer id (their generations never
        expired); once per Redis (a marker remembers it for 30 days). The number deleted."""
        try:
            if await self._redis.exists(_LEGACY_SWEPT_KEY):
                return 0
            removed = 0
            for pattern in _LEGACY_PATTERNS:
                found: list[bytes] = []
                async for key in self._redis.scan_iter(match=pattern, count=batch):
                    found.append(key)
                    if len(found) >= batch:
                        removed += await self._redis.unlink(*found)
                        found.clear()
                if found:
                    removed += await self._redis.unlink(*found)
            await self._redis.set(_LEGACY_SWEPT_KEY, 1, ex=30 * 86_400)
        except (aredis.RedisError, OSError) as exc:
            log.warning("cache_legacy_sweep_failed", error=type(exc).__name__)
            return 0
        if removed:
            log.info("cache_legacy_keys_removed", keys=removed)
        return removed

    @property
    def epoch_owed(self) -> bool:
        """True while a lost invalidation waits for Redis to answer again."""
        return self._epoch_owed

    def _owe_epoch(self) -> None:
        self._epoch_owed = True
        self._repair.start()  # unless it runs already

    async def _repair_loop(self) -> None:
        while self._epoch_owed:
            await asyncio.sleep(self._repair_interval)
            await self._bump_epoch()

    async def _bump_epoch(self) -> bool:
        """Make every record cached so far a miss, everywhere; False while Redis is away."""
        epoch = _new_epoch()
        try:
            await self._redis.set(_EPOCH_KEY, epoch, px=self._epoch_ttl_ms)
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


def _digest(app_user_id: str) -> str:
    """The one-way name of a customer in Redis (128 bits of SHA-256)."""
    return hashlib.sha256(app_user_id.encode()).hexdigest()[:32]


def answer_key(app_user_id: str) -> str:
    """The Redis key of the answer read as `app_user_id` (for tests and operators)."""
    return _answer_key(_digest(app_user_id))


def _answer_key(digest: str) -> str:
    # Not the `customer:` or `answer:` keys earlier versions cached: during a rolling deploy
    # neither version reads the other's format (an old reader would fail on it).
    return f"{_PREFIX}a:{digest}"


def _legacy_keys(app_user_id: str) -> tuple[str, str]:
    """The keys earlier versions kept for `app_user_id` (named by the id itself)."""
    return f"{_PREFIX}answer:{app_user_id}", f"{_PREFIX}gen:{app_user_id}"


def _new_epoch() -> int:
    """A fresh epoch: random and never 0 (an absent epoch reads as 0)."""
    return secrets.randbits(62) + 1


_VERSION_BYTES = 32


def _version_prefix(version: Version) -> bytes:
    """A stored answer starts with the version it was rendered under (fixed width)."""
    return b"%016x%016x" % version


def _gen_key(digest: str) -> str:
    return f"{_PREFIX}g:{digest}"
