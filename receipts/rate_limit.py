"""Spacing of store API requests for batch work (`receiptd reconcile`): at most N per second,
so that a long run stays within a store's quota, which the serving processes share.

The store clients take an optional limiter and wait on it before every HTTP attempt
(retries included); the serving processes pass none. A request's slot is reserved before
the wait, so concurrent callers are spaced too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """At most `per_second` requests per second, evenly spaced (no bursts)."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # when the next request may start

    async def wait(self) -> None:
        """Return when the next request may be sent."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval  # reserved before awaiting: no lock needed
        if start > now:
            await self._sleep(start - now)
