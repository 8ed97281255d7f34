"""Outbound webhooks: every change-feed event POSTed, signed, to each configured endpoint.

customer_events is the transactional outbox (written in the transaction of each change).
Each endpoint has a cursor over it; a pass hands the events after the cursor to the endpoint
as delivery rows, claims the due ones (see outbox_repository.CLAIM: per-customer order, SKIP
LOCKED leases) and POSTs them concurrently. Any 2xx deletes the row; anything else schedules
the next attempt with exponential backoff and jitter, forever (at least once). An attempt
cut short by a crash or a stop keeps its lease until it expires, then runs again, so a
receiver may see an event twice but never loses one. Endpoints have their own rows and their
own loop: a dead receiver holds up nobody else; within an endpoint only the failing
customer's later events wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import structlog

from entitlements.access import rfc3339
from entitlements.errors import DatabaseUnavailable
from entitlements.model import Clock
from entitlements.outbox_signature import HEADER, SigningKey, parse_key, sign
from runtime.background import Periodic
from storage import outbox as outbox_db
from storage.database import run
from storage.feed import encode_cursor, event_object
from storage.outbox import Claimed, EndpointState

log = structlog.get_logger(__name__)

HAND_BATCH = 500  # events handed per statement
CLAIM_BATCH = 32  # deliveries claimed (and POSTed concurrently) per pass and endpoint
POLL_SECONDS = 1.0  # an idle endpoint looks for work this often
LEASE_MARGIN = timedelta(seconds=60)  # beyond the request timeout, before a claim lapses


def endpoint_key(url: str) -> str:
    """The stable id of an endpoint: a hash of its URL (its state survives restarts and
    reloads; a changed URL is a new endpoint). Not reversible, so the URL's credentials
    never show in metrics or logs."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def public_url(url: str) -> str:
    """The URL without user info, query or fragment (where credentials hide), for display."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One configured receiver: where to POST and the keys (the first signs)."""

    key: str
    url: str = field(repr=False)
    public_url: str
    keys: tuple[SigningKey, ...]

    @classmethod
    def configure(cls, url: str, secrets: Sequence[str]) -> Endpoint:
        """From `[[webhooks.outbound]]`: the URL and its `key_id:secret` entries."""
        if not secrets:
            raise ValueError("an endpoint needs at least one secret")
        return cls(endpoint_key(url), url, public_url(url), tuple(parse_key(s) for s in secrets))

    @property
    def signing_key(self) -> SigningKey:
        """The first configured secret's key (see `entitlements.outbox_signature`)."""
        return self.keys[0]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th failure waits a random time between half
    and all of min(maximum, initial * 2^(n-1)) seconds."""

    initial_seconds: float
    maximum_seconds: float

    def delay(self, attempts: int, jitter: float) -> timedelta:
        """The wait after `attempts` failed attempts; `jitter` is uniform in [0, 1)."""
        exponent = min(max(attempts - 1, 0), 60)
        nominal = min(self.maximum_seconds, self.initial_seconds * 2.0**exponent)
        return timedelta(seconds=nominal * (0.5 + 0.5 * jitter))


class DeliveryMetrics(Protocol):
    """Where a pass reports its numbers (Prometheus in the serving process)."""

    def attempted(self, endpoint: str, result: str) -> None:
        """One attempt ended: success, http_error, timeout or connection_error."""

    def observed(self, endpoint: str, pending: int, oldest_pending_seconds: float) -> None:
        """The endpoint's backlog after a pass."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery attempt ended."""

    result: str  # success, http_error, timeout, connection_error
    error: str | None = None  # a short cause for the record; never a body or a secret
    status: int | None = None


class OutboundDelivery:
    """Delivers the change feed to the configured endpoints: one pass at a time (`run_once`,
    what tests drive) or a loop per endpoint in the background (`start`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        clock: Clock,
        endpoints: Sequence[Endpoint],
        policy: RetryPolicy,
        *,
        timeout_seconds: float,
        metrics: DeliveryMetrics | None = None,
        jitter: Callable[[], float] = random.random,
        batch: int = CLAIM_BATCH,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._pool = pool
        self._session = session
        self._clock = clock
        self.endpoints = tuple(endpoints)
        self._policy = policy
        self._timeout = timeout_seconds
        self._lease = timedelta(seconds=timeout_seconds) + LEASE_MARGIN
        self._metrics = metrics
        self._jitter = jitter
        self._batch = batch
        self._poll = poll_seconds
        self._loops = [
            Periodic(
                f"webhook-{e.key}",
                functools.partial(self._pass, e),
                first=poll_seconds,  # the first pass once the process is serving
                idle=poll_seconds,
                failed="webhook_pass_failed",
                endpoint=e.key,
            )
            for e in self.endpoints
        ]

    async def register(self) -> None:
        """Make sure every configured endpoint has its row; a new one starts at the end of
        the feed (it receives what commits from now on, not the history)."""
        now = self._clock()

        async def work(conn: asyncpg.Connection) -> None:
            for endpoint in self.endpoints:
                await outbox_db.register(conn, endpoint.key, now)

        await run(self._pool, work)
        for endpoint in self.endpoints:
            log.info("webhook_endpoint_ready", endpoint=endpoint.key, url=endpoint.public_url)

    async def run_once(self) -> int:
        """One pass over every endpoint side by side; returns how many deliveries were
        attempted. Raises DatabaseUnavailable when PostgreSQL cannot be reached."""
        results = await asyncio.gather(
            *(self.run_endpoint(e) for e in self.endpoints), return_exceptions=True
        )
        for result in results:  # every endpoint's pass has ended; then report a failure
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def run_endpoint(self, endpoint: Endpoint) -> int:
        """Hand the new events to one endpoint, claim its due deliveries and attempt them
        concurrently, then report its backlog. Returns how many were attempted."""

        def hand(conn: asyncpg.Connection) -> Awaitable[int]:
            return outbox_db.hand(conn, endpoint.key, self._clock(), HAND_BATCH)

        while await run(self._pool, hand) == HAND_BATCH:
            pass  # a long backlog (the first pass after downtime) is handed in steps
        now = self._clock()
        claimed = await run(
            self._pool,
            lambda c: outbox_db.claim(c, endpoint.key, now, now + self._lease, self._batch),
        )
        await asyncio.gather(*(self._attempt(endpoint, c) for c in claimed))
        await self._observe(endpoint)
        return len(claimed)

    async def states(self) -> list[tuple[Endpoint, EndpointState | None]]:
        """Every configured endpoint with its stored state (None before it is registered)."""
        now = self._clock()
        keys = [e.key for e in self.endpoints]
        found = await run(self._pool, lambda c: outbox_db.states(c, keys, now))
        return [(e, found.get(e.key)) for e in self.endpoints]

    # --- the background loops ------------------------------------------------------------

    def start(self) -> None:
        """One loop per endpoint (idempotent), so a slow receiver delays no other."""
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        """Stop the loops; an attempt in flight is cancelled and runs again once its lease
        has lapsed (the receiver may then see that event twice)."""
        await asyncio.gather(*(loop.stop() for loop in self._loops))

    async def _pass(self, endpoint: Endpoint) -> float:
        """One pass of an endpoint's loop; the wait before the next: none after deliveries
        (their successors may be due now), else a poll."""
        return 0 if await self.run_endpoint(endpoint) else self._poll

    # --- one attempt ---------------------------------------------------------------------

    async def _attempt(self, endpoint: Endpoint, claimed: Claimed) -> None:
        event = event_object(claimed.event)
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        outcome = await self._post(endpoint, body)
        now = self._clock()
        if self._metrics is not None:
            self._metrics.attempted(endpoint.key, outcome.result)
        fields: dict[str, Any] = {
            "endpoint": endpoint.key,
            "event_id": event["id"],
            "feed_id": claimed.feed_id,
            "attempt": claimed.attempt,
        }
        if outcome.error is None:
            log.info("webhook_delivered", status=outcome.status, **fields)
            with contextlib.suppress(DatabaseUnavailable):  # the lease lapses: sent again
                await run(
                    self._pool, lambda c: outbox_db.delivered(c, endpoint.key, claimed.feed_id, now)
                )
            return
        error = outcome.error
        next_at = now + self._policy.delay(claimed.attempt, self._jitter())
        log.warning(
            "webhook_delivery_failed",
            error=error,
            next_attempt_at=next_at.isoformat(),
            **fields,
        )
        with contextlib.suppress(DatabaseUnavailable):  # the lease lapses: tried again
            await run(
                self._pool,
                lambda c: outbox_db.failed(
                    c, endpoint.key, claimed, next_attempt_at=next_at, error=error, now=now
                ),
            )

    async def _post(self, endpoint: Endpoint, body: bytes) -> Outcome:
        t = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "receiptd-webhooks",
            HEADER: sign(body, endpoint.signing_key, t),
        }
        try:
            async with self._session.post(
                endpoint.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
        except TimeoutError:
            return Outcome("timeout", "timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome("connection_error", f"connection: {type(exc).__name__}")
        if 200 <= status < 300:
            return Outcome("success", status=status)
        return Outcome("http_error", f"http {status}", status)

    async def _observe(self, endpoint: Endpoint) -> None:
        if self._metrics is None:
            return
        now = self._clock()
        found = await run(self._pool, lambda c: outbox_db.states(c, [endpoint.key], now))
        state = found.get(endpoint.key)
        if state is not None:
            self._metrics.observed(endpoint.key, state.pending, pending_age(state, now))


def pending_age(state: EndpointState, now: datetime) -> float:
    """Seconds the oldest undelivered event has waited (0 with nothing pending)."""
    if state.oldest_pending_at is None:
        return 0.0
    return max(0.0, (now - state.oldest_pending_at).total_seconds())


STATE_FIELDS = (
    "cursor",
    "pending",
    "in_flight",
    "retrying",
    "oldest_pending_at",
    "oldest_pending_seconds",
    "next_retry_at",
    "last_attempt_at",
    "last_success_at",
    "last_error",
    "last_error_at",
)


def state_object(endpoint: Endpoint, state: EndpointState | None, now: datetime) -> dict[str, Any]:
    """What `GET /v1/webhooks` shows of one endpoint (never a secret, nor the URL's
    credentials). `cursor` is the last event handed to it, as a `/v1/events` cursor."""
    body: dict[str, Any] = {
        "id": endpoint.key,
        "url": endpoint.public_url,
        "signing_key_id": endpoint.signing_key.key_id,
        "key_ids": [k.key_id for k in endpoint.keys],
    }
    if state is None:  # its row is made at start-up; only a hand-deleted row is missing
        return body | dict.fromkeys(STATE_FIELDS)
    return body | {
        "cursor": encode_cursor(state.feed_cursor),
        "pending": state.pending,
        "in_flight": state.in_flight,
        "retrying": state.retrying,
        "oldest_pending_at": rfc3339(state.oldest_pending_at),
        "oldest_pending_seconds": pending_age(state, now),
        "next_retry_at": rfc3339(state.next_retry_at),
        "last_attempt_at": rfc3339(state.last_attempt_at),
        "last_success_at": rfc3339(state.last_success_at),
        "last_error": state.last_error,
        "last_error_at": rfc3339(state.last_error_at),
    }
