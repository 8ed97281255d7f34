"""Acknowledging Google Play purchases (the 3-day rule, store-protocols B3).

A purchase that needs it is recorded in `play_acknowledgements` *before* its state is
committed (so the row exists whatever happens after), acknowledged inline right after the
commit, and otherwise retried by a background task with exponential backoff until Play
confirms or the 3-day window has passed. The retry re-reads the purchase first, so an
acknowledgement (or a consume by the app) that already happened is simply recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog

from entitlements.errors import DatabaseUnavailable
from entitlements.model import Clock
from receipts.errors import ReceiptError
from receipts.google.play import PlayClient
from receipts.google.translate import needs_acknowledgement
from runtime.background import Periodic
from storage import play_acknowledgements as repo
from storage.database import TransactionWrite, run
from storage.play_acknowledgements import AckRequest, PendingAck

log = structlog.get_logger(__name__)

ACK_WINDOW = timedelta(days=3)  # after this Google has refunded the purchase: stop trying
INLINE_GRACE = timedelta(minutes=2)  # a fresh row belongs to the request that wrote it
LEASE = timedelta(minutes=5)  # an attempt in flight; a crashed worker's row comes back after
RETRY_INITIAL = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
INLINE_TIMEOUT = 5.0  # seconds the webhook waits for the inline attempt


def purchase_ref(token: str) -> str:
    """A short, stable, non-reversible reference to a purchase token for logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def retry_delay(attempts: int) -> timedelta:
    """Backoff after `attempts` failed attempts: 30 s, 1 min, 2 min, … up to 1 h."""
    delay: timedelta = RETRY_INITIAL * 2 ** min(20, max(0, attempts - 1))
    return min(RETRY_MAX, delay)


class PlayAcknowledgements:
    """Pending acknowledgements: record, settle inline, retry in the background."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        play: PlayClient,
        clock: Clock,
        *,
        batch: int = 50,
        poll_seconds: float = 10.0,
    ) -> None:
        self._pool = pool
        self._play = play
        self._clock = clock
        self._batch = batch
        self._poll = poll_seconds
        self._loop = Periodic(
            "play-ack-retry",
            self._pass,
            first=0,
            idle=poll_seconds,
            failed="play_ack_retry_pass_failed",
        )

    # --- the request path ----------------------------------------------------------------

    def writer(self, requests: Sequence[AckRequest]) -> TransactionWrite | None:
        """The pending rows' insert (idempotent), to run inside the ingest transaction so the
        rows commit together with the state they acknowledge."""
        if not requests:
            return None
        now = self._clock()

        async def write(conn: asyncpg.Connection) -> None:
            await repo.insert_acks(conn, requests, now, now + INLINE_GRACE)

        return write

    async def settle(self, package_name: str, token: str) -> None:
        """Acknowledge this token's fresh rows now (after commit). Never raises: a failure
        is left to the retry task."""
        lease = self._clock() + LEASE
        try:
            claimed = await run(
                self._pool, lambda c: repo.claim_fresh(c, package_name, token, lease)
            )
        except DatabaseUnavailable:
            return  # the row's first_try time hands it to the retry task
        for ack in claimed:
            await self._attempt(ack, reread=False, limit=INLINE_TIMEOUT)

    # --- the retry task ------------------------------------------------------------------

    async def retry_due(self) -> int:
        """One pass: claim a bounded batch of due rows and try each. Returns how many
        were claimed. Raises DatabaseUnavailable when the claim itself fails."""
        now = self._clock()
        claimed = await run(self._pool, lambda c: repo.claim_due(c, now, now + LEASE, self._batch))
        await asyncio.gather(*(self._attempt(a, reread=True, limit=None) for a in claimed))
        return len(claimed)

    def start(self) -> None:
        """Start the background retry loop (idempotent)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop; an attempt in flight is cancelled and its lease makes it retry."""
        await self._loop.stop()

    async def _pass(self) -> float:
        """One retry pass; after a full batch more are due: no wait."""
        return 0 if await self.retry_due() >= self._batch else self._poll

    # --- one attempt ---------------------------------------------------------------------

    async def _attempt(self, ack: PendingAck, *, reread: bool, limit: float | None) -> None:
        request = ack.request
        fields = {
            "kind": request.kind,
            "package_name": request.package_name,
            "product_id": request.product_id,
            "purchase_ref": purchase_ref(request.purchase_token),
            "attempts": ack.attempts,
        }
        try:
            async with asyncio.timeout(limit):
                already = reread and not needs_acknowledgement(await self._read(request))
                if not already:
                    await self._acknowledge(request)
        except (ReceiptError, TimeoutError) as exc:
            await self._failed(ack, getattr(exc, "code", "timeout"), fields)
            return
        log.info("play_acknowledged", already_acknowledged=already, **fields)
        with contextlib.suppress(DatabaseUnavailable):  # the lease expires; re-read then
            await run(self._pool, lambda c: repo.delete_ack(c, ack.id))

    async def _failed(self, ack: PendingAck, error: str, fields: dict[str, object]) -> None:
        now = self._clock()
        if now >= ack.created_at + ACK_WINDOW:
            log.error("play_acknowledgement_abandoned", error=error, **fields)
            with contextlib.suppress(DatabaseUnavailable):
                await run(self._pool, lambda c: repo.delete_ack(c, ack.id))
            return
        next_at = now + retry_delay(ack.attempts)
        log.warning("play_acknowledgement_failed", error=error, next_attempt_at=next_at, **fields)
        with contextlib.suppress(DatabaseUnavailable):
            await run(self._pool, lambda c: repo.reschedule_ack(c, ack.id, next_at, error))

    async def _read(self, r: AckRequest) -> dict[str, object]:
        if r.kind == "subscription":
            return await self._play.get_subscription(r.package_name, r.purchase_token)
        return await self._play.get_product(r.package_name, r.product_id, r.purchase_token)

    async def _acknowledge(self, r: AckRequest) -> None:
        if r.kind == "subscription":
            await self._play.acknowledge_subscription(
                r.package_name, r.product_id, r.purchase_token
            )
        else:
            await self._play.acknowledge_product(r.package_name, r.product_id, r.purchase_token)
