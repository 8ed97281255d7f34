"""The per-process cache of rendered customer answers (bytes + ETag), in front of Redis.

A hit costs a dict look-up and two comparisons: no Redis round trip, no decoding, no JSON.
An entry is served only while
- the request's `now` lies in [rendered at, `next_change`): the first instant at which an
  `active` flag or a `status` of that customer changes by time alone (entitlements.access);
  `as_of` is spliced in per request, so it is always the request's own time;
- no invalidation for that customer arrived (the writer's own process drops it at once;
  every other worker and replica hears it on the Redis channel, cache/invalidation.py);
- the channel is healthy: while the subscription is down or unconfirmed nothing is served or
  stored here (and everything is dropped when it is lost or re-established), because
  invalidations published meanwhile would be missed;
- it is younger than `max_age` seconds (`redis.cache_ttl_seconds`): the bound for the case no
  health check sees (a writer cut off from Redis while this process still reaches it, the
  same bound the Redis cache has).

A read that misses takes a `token` first and stores its answer only if no invalidation
happened since, so a read racing a write never installs the answer from before the write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

_MAX_ENTRIES: Final = 200_000


@dataclass(frozen=True, slots=True)
class Rendered:
    """A customer object rendered at `rendered_at`: `head` + as_of + `tail` is the body."""

    head: bytes
    tail: bytes
    etag: str
    rendered_at: datetime
    valid_until: datetime | None
    stored_at: float = 0.0


def holds_at(rendered: Rendered, now: datetime) -> bool:
    """True when `rendered` is the answer at `now` too (nothing flipped in between)."""
    until = rendered.valid_until
    return rendered.rendered_at <= now and (until is None or now < until)


class LocalReads:
    """app_user_id → Rendered, for this process only."""

    def __init__(self, max_age: float, max_entries: int = _MAX_ENTRIES) -> None:
        self._entries: dict[str, Rendered] = {}
        self._max_age = max_age
        self._max_entries = max_entries
        self._token = 0
        self.enabled = False  # set by the invalidation listener while its channel is healthy

    def get(self, app_user_id: str, now: datetime) -> Rendered | None:
        """The customer's cached answer if it still holds at `now`, the channel is healthy and
        it is younger than `max_age`; None otherwise (a stale entry is dropped)."""
        entry = self._entries.get(app_user_id)
        if entry is None:
            return None
        if (
            not self.enabled
            or not holds_at(entry, now)
            or time.monotonic() - entry.stored_at > self._max_age
        ):
            self._entries.pop(app_user_id, None)
            return None
        return entry

    def token(self) -> int:
        """Pass to `put`: the answer is stored only if nothing was invalidated since."""
        return self._token

    def put(self, app_user_id: str, rendered: Rendered, token: int) -> None:
        """Keep the customer's answer, unless the cache is off or something was invalidated
        since `token` was taken (the oldest entry goes when full)."""
        if not self.enabled or token != self._token:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest insertion
        self._entries[app_user_id] = Rendered(
            rendered.head,
            rendered.tail,
            rendered.etag,
            rendered.rendered_at,
            rendered.valid_until,
            time.monotonic(),
        )

    def drop(self, app_user_ids: Iterable[str]) -> None:
        """Forget these customers."""
        self._token += 1
        for app_user_id in app_user_ids:
            self._entries.pop(app_user_id, None)

    def clear(self) -> None:
        """Forget every customer."""
        self._token += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
