"""Whether Redis answers, seen from outside: a PING every few seconds sets `up` and the
reason it is not, which `/readyz` shows and the `receiptd_cache_up` gauge exports; while it is
down a warning is repeated every `warn_every` seconds (not once and then silence), and one
line says when it is back. Reads and writes keep their own fallbacks (cache/answers.py)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aredis
import structlog

from runtime.background import Periodic

log = structlog.get_logger(__name__)

CHECK_SECONDS = 2.0
WARN_EVERY_SECONDS = 60.0


class CacheHealth:
    """The health of one Redis, checked in the background while started."""

    def __init__(
        self,
        client: aredis.Redis,
        *,
        interval: float = CHECK_SECONDS,
        warn_every: float = WARN_EVERY_SECONDS,
    ) -> None:
        self._client = client
        self._interval = interval
        self._warn_every = warn_every
        self.up = True
        self.reason: str | None = None
        self._last_warning = 0.0
        self._loop = Periodic(
            "cache-health", self._pass, first=0, idle=interval, failed="cache_health_failed"
        )

    def start(self) -> None:
        """Check now and every `interval` seconds from now on."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop checking."""
        await self._loop.stop()

    async def check(self) -> bool:
        """One PING: whether Redis answered (and `up`, `reason` updated)."""
        try:
            async with asyncio.timeout(max(self._interval, 0.5)):
                await self._client.ping()
        except (aredis.RedisError, OSError, TimeoutError) as exc:
            self._down(_reason(exc))
            return False
        if not self.up:
            log.info("cache_recovered", was=self.reason)
        self.up, self.reason = True, None
        return True

    async def _pass(self) -> float:
        await self.check()
        return self._interval

    def _down(self, reason: str) -> None:
        now = time.monotonic()
        if self.up or now - self._last_warning >= self._warn_every:
            self._last_warning = now
            log.warning("cache_down", reason=reason, serving="from PostgreSQL")
        self.up, self.reason = False, reason


def _reason(exc: BaseException) -> str:
    """The error's class and Redis's own words (they never carry the password)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
