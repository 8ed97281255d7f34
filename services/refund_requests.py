"""Refund requests answered (Apple's CONSUMPTION_REQUEST), and the consent they depend on.

`RefundRequests` is what the API and the console do: list requests, change a pending one's
preference, record a customer's consent. `ConsumptionAnswers` is the sending loop: every
pass claims the due pending requests (a lease: two workers or replicas never send the same
one; a sender that died mid-send leaves a claim that lapses and is tried again), builds
Apple's body (entitlements/refunds.py) with the customer's consent, sends it, and marks the
row `sent`, `skipped` (no consent: nothing is sent), or schedules a retry with backoff until
the deadline, after which it is `failed`. The rows are opened in the ingest transaction of
the statement itself (services/ingest.py), so a 2xx to Apple means the request is stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from entitlements import refunds
from entitlements.access import rfc3339
from entitlements.audit import Actor, AuditEntry
from entitlements.errors import RefundRequestNotFound, RefundRequestNotPending
from entitlements.model import Clock
from receipts.errors import ReceiptError
from runtime.background import Periodic
from storage import customers as customers_db
from storage import refund_requests as db
from storage.database import run

log = structlog.get_logger(__name__)

CLAIM_BATCH = 16
POLL_SECONDS = 5.0
LEASE = timedelta(seconds=90)  # beyond a send's timeout and retries, before a claim lapses
NOT_ANSWERING = "not answered: [apple.refund_requests] answer = false"

# Sends consumption information: (app, transaction id, environment, Apple's body).
SendConsumption = Callable[[str | None, str, str, dict[str, Any]], Awaitable[None]]


def request_object(row: asyncpg.Record, default_preference: str) -> dict[str, Any]:
    """The contract's refund request object (plus what was sent, and when)."""
    sent = row["sent_body"]
    return {
        "id": str(row["id"]),
        "app_user_id": row["app_user_id"],
        "store": row["store"],
        "app": row["app"],
        "transaction_id": row["transaction_id"],
        "product_id": row["product_id"],
        "reason": row["reason"],
        "requested_at": rfc3339(row["requested_at"]),
        "deadline": rfc3339(row["deadline"]),
        "preference": row["preference"] or default_preference,
        "status": row["status"],
        "attempts": row["attempts"],
        "sent_at": rfc3339(row["sent_at"]) if row["sent_at"] else None,
        "sent": _json(sent),
        "last_error": row["last_error"],
        "decided_at": rfc3339(row["decided_at"]) if row["decided_at"] else None,
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class RefundSettings:
    """What the sending needs of `[apple.refund_requests]`."""

    answer: bool = False
    preference: str = "decline"
    sample_content_provided: bool = True


class RefundRequests:
    """The API's and the console's refund-request use cases."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, settings: RefundSettings) -> None:
        self._pool = pool
        self._clock = clock
        self._settings = settings

    @property
    def default_preference(self) -> str:
        """The configured preference of requests no operator changed."""
        return self._settings.preference

    async def listing(self, statuses: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
        """Requests in `statuses`, pending first (nearest deadline first), then newest."""
        rows = await run(self._pool, lambda conn: db.listing(conn, statuses, limit))
        return [request_object(r, self.default_preference) for r in rows]

    async def one(self, request_id: str) -> dict[str, Any]:
        """One request; RefundRequestNotFound when no request has this id."""
        key = _uuid(request_id)
        row = await run(self._pool, lambda conn: db.one(conn, key))
        if row is None:
            raise RefundRequestNotFound(request_id)
        return request_object(row, self.default_preference)

    async def change_preference(
        self, request_id: str, preference: str, actor: Actor
    ) -> dict[str, Any]:
        """Set a pending request's preference (audited); RefundRequestNotPending once it was
        sent or decided, RefundRequestNotFound for an unknown id."""
        key = _uuid(request_id)

        async def work(conn: asyncpg.Connection) -> asyncpg.Record:
            async with conn.transaction():
                row = await db.set_preference(conn, key, preference)
                if row is None:
                    if await db.one(conn, key) is None:
                        raise RefundRequestNotFound(request_id)
                    raise RefundRequestNotPending(request_id)
                if row["app_user_id"]:
                    details = {"refund_request": str(key), "preference": preference}
                    entry = AuditEntry(
                        actor.name,
                        "refund_preference",
                        row["app_user_id"],
                        actor.request_id,
                        details,
                    )
                    await customers_db.audit(conn, entry, self._clock())
                return row

        return request_object(await run(self._pool, work), self.default_preference)

    async def set_consent(
        self, app_user_id: str, consumption_data: bool, actor: Actor
    ) -> dict[str, Any]:
        """Record (or withdraw) a customer's consent to share consumption data (audited)."""
        now = self._clock()

        async def work(conn: asyncpg.Connection) -> asyncpg.Record:
            async with conn.transaction():
                row = await db.set_consent(conn, app_user_id, consumption_data, now)
                details = {"consumption_data": consumption_data}
                entry = AuditEntry(actor.name, "consent", app_user_id, actor.request_id, details)
                await customers_db.audit(conn, entry, now)
                return row

        row = await run(self._pool, work)
        return {
            "app_user_id": row["app_user_id"],
            "consumption_data": row["consumption_data"],
            "updated_at": rfc3339(row["updated_at"]),
        }


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise RefundRequestNotFound(text) from None


@dataclass
class PassReport:
    """What one pass of the sending loop did."""

    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0


class ConsumptionAnswers:
    """The loop that answers refund requests (see the module doc)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: RefundSettings,
        send: SendConsumption | None,
        *,
        on_result: Callable[[str], None] = lambda _result: None,
        on_pending: Callable[[int, float | None], None] = lambda _count, _left: None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._settings = settings
        self._send = send
        self._on_result = on_result
        self._on_pending = on_pending
        self._loop = Periodic(
            "refund-requests",
            self._step,
            first=0.5,
            idle=POLL_SECONDS,
            failed="refund_requests_pass_failed",
        )

    def start(self) -> None:
        """Run passes in the background until `stop`."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop; a send cut short keeps its claim until the lease lapses."""
        await self._loop.stop()

    async def _step(self) -> float:
        report = await self.run_once()
        busy = report.sent + report.skipped + report.retried + report.failed
        return 0.0 if busy >= CLAIM_BATCH else POLL_SECONDS

    async def run_once(self) -> PassReport:
        """One pass: expire what can no longer be sent, then send what is due; then report
        how many are pending and the time left to the nearest deadline (`on_pending`)."""
        report = await self._pass()
        self._on_pending(*await pending_stats(self._pool, self._clock()))
        return report

    async def _pass(self) -> PassReport:
        report = PassReport()
        now = self._clock()
        answering = self._settings.answer and self._send is not None
        why = "deadline passed before a send succeeded" if answering else NOT_ANSWERING
        report.failed += await run(self._pool, lambda conn: db.expire(conn, now, why))
        for _ in range(report.failed):
            self._on_result("failed")
        if not answering:
            return report
        claimed = await run(self._pool, lambda conn: db.claim_due(conn, now, LEASE, CLAIM_BATCH))
        for row in claimed:
            result = await self._answer(row)
            setattr(report, result, getattr(report, result) + 1)
            self._on_result(result)
        return report

    async def _answer(self, row: asyncpg.Record) -> str:
        now = self._clock()
        request_id = row["id"]
        if not refunds.may_send(now, row["deadline"]):
            await run(
                self._pool,
                lambda conn: db.finish(
                    conn, request_id, "failed", at=None, error="deadline passed before a send"
                ),
            )
            return "failed"
        owner, consented = await run(self._pool, lambda conn: _owner_consent(conn, row))
        body = refunds.consumption_body(
            consented=consented,
            sample_content_provided=self._settings.sample_content_provided,
            preference=row["preference"] or self._settings.preference,
            consumption_percentage=row["consumption_percentage"],
        )
        if body is None:
            log.info("refund_request_skipped", refund_request=str(request_id), reason="consent")
            await run(
                self._pool,
                lambda conn: db.finish(
                    conn, request_id, "skipped", at=None, error="the customer has not consented"
                ),
            )
            return "skipped"
        assert self._send is not None
        try:
            await self._send(row["app"], row["transaction_id"], row["environment"], body)
        except ReceiptError as exc:
            return await self._failed_send(row, exc)
        await run(
            self._pool,
            lambda conn: db.finish(conn, request_id, "sent", at=self._clock(), body=body),
        )
        log.info("refund_request_sent", refund_request=str(request_id), owner_known=bool(owner))
        return "sent"

    async def _failed_send(self, row: asyncpg.Record, exc: ReceiptError) -> str:
        request_id = row["id"]
        error = f"{type(exc).__name__}: {exc.message}"
        retry_at = self._clock() + refunds.retry_after(row["attempts"])
        if exc.retryable and refunds.may_send(retry_at, row["deadline"]):
            log.warning("refund_request_send_failed", refund_request=str(request_id), error=error)
            await run(self._pool, lambda conn: db.retry(conn, request_id, retry_at, error))
            return "retried"
        log.warning("refund_request_failed", refund_request=str(request_id), error=error)
        await run(
            self._pool, lambda conn: db.finish(conn, request_id, "failed", at=None, error=error)
        )
        return "failed"


async def _owner_consent(conn: asyncpg.Connection, row: asyncpg.Record) -> tuple[str | None, bool]:
    """The purchase's owner now (a merge or transfer may have moved it since the request)
    and whether that customer consented to share consumption data."""
    owner = await db.purchase_owner(conn, row["store"], row["purchase_id"]) or row["app_user_id"]
    consent = await db.consent(conn, owner)
    return owner, bool(consent is not None and consent["consumption_data"])


async def pending_stats(pool: asyncpg.Pool, now: datetime) -> tuple[int, float | None]:
    """How many requests are pending, and the seconds left to the nearest deadline."""
    count, nearest = await run(pool, db.pending_stats)
    return count, None if nearest is None else (nearest - now).total_seconds()
