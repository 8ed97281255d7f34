"""The I/O shell around the pure core: one transaction per store statement batch.

ingest: journal the raw notification (inbox, dedupe on the store's message id) → lock the
purchase rows → `apply` → write state → link users → change-feed events → commit →
invalidate the cache. Reads: cache → PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import asyncpg
import structlog

from entitlements import repository as repo
from entitlements.access import Catalog, CustomerRecord, entitlements_of
from entitlements.cache import CustomerCache
from entitlements.database import TransactionWrite, run
from entitlements.model import Clock, Store, StoreEvent
from entitlements.ownership import Held, TransferPolicy, decide, keys_to_lock
from entitlements.state import view

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to a batch: `duplicate` when its message id was journaled before."""

    status: Literal["processed", "duplicate", "ignored", "rejected"]
    changed_users: frozenset[str] = frozenset()
    purchase_users: dict[tuple[Store, str], str | None] = field(default_factory=dict)


class EntitlementService:
    """Writes store statements and reads customer records."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: CustomerCache,
        catalog: Catalog,
        clock: Clock,
        transfer_policy: TransferPolicy = "transfer",
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._catalog = catalog
        self._clock = clock
        self._transfer_policy = transfer_policy

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    async def customer_record(self, app_user_id: str) -> CustomerRecord:
        """The stored record of a customer (cache first); unknown ids read as empty."""
        cached, generation = await self._cache.get(app_user_id)
        if cached is not None:
            return cached
        record = await self._db(lambda conn: repo.fetch_customer(conn, app_user_id))
        if generation is not None:
            await self._cache.put(record, generation)
        return record

    async def ingest(
        self,
        note: repo.NotificationRow | None,
        events: Sequence[StoreEvent],
        *,
        submitted_by: str | None = None,
        also: TransactionWrite | None = None,
    ) -> IngestOutcome:
        """Journal `note` (if given) and fold `events` into stored state, atomically.

        `submitted_by` links every purchase in `events` to that user (app submission,
        under the transfer policy); otherwise store link hints link unlinked purchases.
        `also` runs in the same transaction (not for a duplicate).
        """
        now = self._clock()

        async def work(conn: asyncpg.Connection) -> IngestOutcome:
            async with conn.transaction():
                if note is not None and not await repo.insert_notification(conn, note, now):
                    return IngestOutcome(status="duplicate")
                if also is not None:
                    await also(conn)
                changed, owners = await self._apply_all(conn, events, submitted_by, now)
            status = note.result if note is not None else "processed"
            return IngestOutcome(status=status, changed_users=changed, purchase_users=owners)

        outcome = await self._db(work)
        if outcome.changed_users:
            await self._cache.invalidate(outcome.changed_users)
        return outcome

    async def _apply_all(
        self,
        conn: asyncpg.Connection,
        events: Sequence[StoreEvent],
        submitted_by: str | None,
        now: datetime,
    ) -> tuple[frozenset[str], dict[tuple[Store, str], str | None]]:
        held = {}
        for key in keys_to_lock(events):
            locked = await repo.lock_purchase(conn, *key)
            held[key] = Held(locked.state, locked.app_user_id)
        decision = decide(
            held, events, submitted_by=submitted_by, policy=self._transfer_policy, now=now
        )
        for store in decision.ignored_hints:
            log.warning("link_hint_ignored", store=store.value, reason="not an app_user_id")
        for user in sorted(decision.new_customers):
            await repo.ensure_customer(conn, user)
        for write in decision.writes:
            await repo.save_purchase(conn, write.state, view(write.state), write.owner)
        for transfer in decision.transfers:
            log.info("purchase_transferred", store=transfer.store.value, to_user=transfer.to_user)
        sequences = await repo.record_changes(
            conn,
            list(decision.changed.items()),
            lambda record: entitlements_of(record, self._catalog, now),
        )
        for user, sequence in sequences.items():
            log.info("entitlement_changed", app_user_id=user, sequence=sequence)
        return frozenset(decision.changed), decision.owners

    async def journal_seen(self, store: Store, message_id: str) -> bool:
        """True when the journal already holds this store message id (a cheap dedupe
        before a store API call; the journal insert in `ingest` stays the real guard)."""
        return await self._db(lambda conn: repo.notification_seen(conn, store, message_id))

    async def _db(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await run(self._pool, work)
