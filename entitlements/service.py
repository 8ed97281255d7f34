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
from entitlements.errors import DatabaseUnavailable, PurchaseOwnedByAnotherUser
from entitlements.model import EventKind, PurchaseState, Store, StoreEvent, is_app_user_id
from entitlements.state import apply, mark_superseded, view

log = structlog.get_logger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
TransferPolicy = Literal["transfer", "keep"]
# Extra writes a caller needs committed atomically with the state (e.g. a pending store
# acknowledgement); they run inside the ingest transaction, after the journal insert.
TransactionWrite = Callable[[asyncpg.Connection], Awaitable[None]]

# Errors that mean "the database is not there right now" rather than a bug.
DB_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
)


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
        by_purchase: dict[tuple[Store, str], list[StoreEvent]] = {}
        for event in events:
            by_purchase.setdefault((event.store, event.purchase_id), []).append(event)
        superseded = {
            (e.store, e.supersedes): (e.store, e.purchase_id)
            for e in events
            if e.supersedes is not None and e.supersedes != e.purchase_id
        }
        # Lock every row this batch touches in one global order: no deadlocks.
        keys = sorted(set(by_purchase) | set(superseded))
        locked = {key: await repo.lock_purchase(conn, *key) for key in keys}

        touched: dict[str, str] = {}
        owners: dict[tuple[Store, str], str | None] = {}
        for key, batch in by_purchase.items():
            current = locked[key]
            state: PurchaseState | None = current.state
            for event in batch:
                state = apply(state, event)
            assert state is not None
            owner = self._new_owner(current.app_user_id, batch, submitted_by)
            if owner is None and state.supersedes is not None:
                previous = locked.get((key[0], state.supersedes))
                owner = previous.app_user_id if previous is not None else None
            if owner is not None and owner != current.app_user_id:
                await repo.ensure_customer(conn, owner)
            await repo.save_purchase(conn, state, view(state), owner)
            owners[key] = owner
            label = batch[-1].kind.value
            if current.app_user_id is not None and current.app_user_id != owner:
                label = "transferred"
                touched[current.app_user_id] = label
                log.info("purchase_transferred", store=key[0].value, to_user=owner)
            if owner is not None:
                touched[owner] = label

        for old_key, new_key in superseded.items():
            previous = locked[old_key]
            replacing = by_purchase[new_key][-1]
            base = previous.state or PurchaseState(
                store=old_key[0],
                purchase_id=old_key[1],
                is_sandbox=replacing.is_sandbox,  # a test purchase replaces a test purchase
                updated_at=now,
            )
            marked = mark_superseded(base, new_key[1])
            await repo.save_purchase(conn, marked, view(marked), previous.app_user_id)
            if previous.app_user_id is not None:
                touched.setdefault(previous.app_user_id, EventKind.PRODUCT_CHANGED.value)

        sequences = await repo.record_changes(
            conn,
            list(touched.items()),
            lambda record: entitlements_of(record, self._catalog, now),
        )
        for user, sequence in sequences.items():
            log.info("entitlement_changed", app_user_id=user, sequence=sequence)
        return frozenset(touched), owners

    def _new_owner(
        self, owner: str | None, batch: Sequence[StoreEvent], submitted_by: str | None
    ) -> str | None:
        if submitted_by is not None:
            if owner is not None and owner != submitted_by and self._transfer_policy == "keep":
                raise PurchaseOwnedByAnotherUser
            return submitted_by
        if owner is not None:
            return owner
        hints = [e.app_user_id for e in batch if e.app_user_id]
        usable = [h for h in hints if is_app_user_id(h)]
        if len(usable) < len(hints):
            # A store link hint that no app could read back (Apple appAccountToken is a
            # UUID; Google's obfuscated id is free text): linking to it would strand the
            # purchase. Leave it unlinked for the app's submission or linkedPurchaseToken.
            log.warning(
                "link_hint_ignored", store=batch[0].store.value, reason="not an app_user_id"
            )
        return usable[-1] if usable else None

    async def _db(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except DB_DOWN_ERRORS as exc:
            log.warning("database_unavailable", error=type(exc).__name__)
            raise DatabaseUnavailable from exc
