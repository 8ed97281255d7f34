"""The I/O shell around the pure core: one transaction per store statement batch.

ingest: journal the raw notification (inbox, dedupe on the store's message id; with the
purchases its events touch, so replay finds every entry of a purchase) → lock the purchase
rows → `apply` → write state → link users → change-feed events → commit → invalidate the
cache. Reads: the rendered answer, Redis → PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import asyncpg
import structlog

from cache import render
from cache.answers import CustomerCache
from cache.local import Rendered
from entitlements import money, refunds
from entitlements.access import Catalog, CustomerRecord, entitlements_of
from entitlements.audit import Actor, AuditEntry
from entitlements.journal import JournalEntry
from entitlements.model import Clock, PurchaseState, Store, StoreEvent
from entitlements.ownership import Held, Transfer, TransferPolicy, decide, keys_to_lock
from entitlements.state import view
from storage import customers as customers_db
from storage import money as money_db
from storage import purchases as purchases_db
from storage import reconcile as reconcile_db
from storage import refund_requests as refund_requests_db
from storage.database import TransactionWrite, run

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
        *,
        refund_delay: timedelta = timedelta(0),
    ) -> None:
        self._pool = pool
        self._refund_delay = refund_delay
        self._cache = cache
        self._catalog = catalog
        self._clock = clock
        self._transfer_policy = transfer_policy

    @property
    def catalog(self) -> Catalog:
        """The configured entitlements and the product ids that give each."""
        return self._catalog

    async def customer_record(self, app_user_id: str) -> CustomerRecord:
        """The stored record of a customer, from PostgreSQL (reads are served from the cached
        answers, `customer_answer`); unknown ids read as empty."""
        return await self._db(lambda conn: purchases_db.fetch_customer(conn, app_user_id))

    async def customer_answer(self, app_user_id: str, now: datetime) -> Rendered:
        """The rendered customer object at `now`: Redis's precomputed answer (one MGET, no
        domain objects) or, on a miss, one PostgreSQL round trip, then stored in Redis."""
        raw, version = await self._cache.get_answer(app_user_id)
        if raw is not None:
            cached = render.decode(raw, app_user_id)
            if render.holds_at(cached, now):
                return cached
        record = await self._db(lambda conn: purchases_db.fetch_customer(conn, app_user_id))
        rendered = render.render(record, self._catalog, now)
        if version is not None:
            await self._cache.put_answer(app_user_id, render.encode(rendered, app_user_id), version)
        return rendered

    async def ingest(
        self,
        note: JournalEntry | None,
        events: Sequence[StoreEvent],
        *,
        submitted_by: str | None = None,
        proven: bool = False,
        also: TransactionWrite | None = None,
        actor: Actor | None = None,
    ) -> IngestOutcome:
        """Journal `note` (if given) and fold `events` into stored state, atomically.

        `submitted_by` links every purchase in `events` to that user (app submission,
        under the transfer policy when `proven` — the submitter proved it holds them — else
        only purchases without another owner; `actor` is who submitted, for the audit of a
        transfer); otherwise store link hints link unlinked purchases. `also` runs in the same
        transaction (not for a duplicate).
        """
        now = self._clock()
        keys = keys_to_lock(events)
        touched = sorted({purchase_id for _store, purchase_id in keys})

        async def work(conn: asyncpg.Connection) -> tuple[IngestOutcome, list[str]]:
            async with conn.transaction():
                locked: dict[tuple[Store, str], purchases_db.LockedPurchase] = {}
                entry: int | None = None  # the journal entry: its writes record their owners
                if note is not None and len(keys) == 1:
                    # the common case: journal and lock its one purchase in one round trip
                    row = await purchases_db.insert_notification_lock_purchase(
                        conn, note, now, touched, keys[0]
                    )
                    if row is None:
                        return IngestOutcome(status="duplicate"), []
                    entry, locked[keys[0]] = row
                elif note is not None:
                    entry = await purchases_db.insert_notification(conn, note, now, touched)
                    if entry is None:
                        return IngestOutcome(status="duplicate"), []
                if also is not None:
                    await also(conn)
                for key in keys:
                    if key not in locked:
                        locked[key] = await purchases_db.lock_purchase(conn, *key)
                changed, owners, aliases = await self._apply_all(
                    conn,
                    events,
                    locked,
                    submitted_by=submitted_by,
                    proven=proven,
                    actor=actor,
                    now=now,
                    entry=entry,
                )
            status = note.result if note is not None else "processed"
            outcome = IngestOutcome(status=status, changed_users=changed, purchase_users=owners)
            return outcome, aliases

        outcome, aliases = await self._db(work)
        if outcome.changed_users:
            await self._cache.invalidate({*outcome.changed_users, *aliases})
        return outcome

    async def _apply_all(
        self,
        conn: asyncpg.Connection,
        events: Sequence[StoreEvent],
        locked: dict[tuple[Store, str], purchases_db.LockedPurchase],
        *,
        submitted_by: str | None,
        proven: bool,
        actor: Actor | None,
        now: datetime,
        entry: int | None = None,
    ) -> tuple[frozenset[str], dict[tuple[Store, str], str | None], list[str]]:
        """Fold `events` into the `locked` purchases; the changed customers, the purchases'
        owners and the changed customers' aliases. Each write also records the owner it
        decided for journal entry `entry` (replay recreates a lost row from it), in the same
        statement: no round trip of its own."""
        owners_now = {row.app_user_id for row in locked.values() if row.app_user_id}
        erased = await purchases_db.erased_among(conn, owners_now)
        held = {
            key: Held(row.state, row.app_user_id, row.app_user_id in erased)
            for key, row in locked.items()
        }
        named = {e.app_user_id for e in events if e.app_user_id}
        if submitted_by is not None:
            named.add(submitted_by)
        aliases = await purchases_db.resolve_aliases(conn, named) if named else {}
        decision = decide(
            held,
            events,
            submitted_by=submitted_by,
            policy=self._transfer_policy,
            aliases=aliases,
            proven=proven,
        )
        for store in decision.ignored_hints:
            log.warning("link_hint_ignored", store=store.value, reason="not an app_user_id")
        new_customers = sorted(decision.new_customers)
        writes = list(decision.writes)
        created: set[str] = set()
        if len(new_customers) == 1 and len(writes) == 1:
            # the common case: its one new customer and its one write in one round trip
            write = writes[0]
            if await purchases_db.ensure_customer_save_purchase(
                conn, new_customers[0], write.state, view(write.state), write.owner, entry=entry
            ):
                created.add(new_customers[0])
        else:
            for user in new_customers:
                await purchases_db.ensure_customer(conn, user)
            for write in writes:
                await purchases_db.save_purchase(
                    conn, write.state, view(write.state), write.owner, entry=entry
                )
        requested = await self._refund_statements(conn, events, decision.owners, held, now)
        charged = [
            charge
            for write in writes
            for charge in money.changed_charges(write.state, _before(held, write.state))
        ]
        if charged:
            await money_db.record(conn, charged, now)
        moved: set[str] = set()
        for transfer in decision.transfers:
            log.info("purchase_transferred", store=transfer.store.value, to_user=transfer.to_user)
            await self._audit_transfer(conn, transfer, actor, now)
            moved |= {transfer.from_user, *([transfer.to_user] if transfer.to_user else [])}
        sequences, changed_aliases = await purchases_db.record_changes(
            conn,
            list(decision.changed.items()),
            lambda record: entitlements_of(record, self._catalog, now),
            at=now,
            always=moved | requested,
            with_aliases=True,
            created=created,
        )
        for user, sequence in sequences.items():
            log.info("entitlement_changed", app_user_id=user, sequence=sequence)
        return frozenset(decision.changed), decision.owners, changed_aliases

    async def _refund_statements(
        self,
        conn: asyncpg.Connection,
        events: Sequence[StoreEvent],
        owners: dict[tuple[Store, str], str | None],
        held: dict[tuple[Store, str], Held],
        now: datetime,
    ) -> set[str]:
        """Open the refund requests `events` state (Apple's CONSUMPTION_REQUEST) and close
        those the store decided (REFUND / REFUND_DECLINED). The customers with a new request
        (each gets a change-feed event, though no entitlement changed)."""
        requested: set[str] = set()
        for event in events:
            key = (event.store, event.purchase_id)
            request = refunds.opened_by(event)
            if request is not None:
                owner = owners.get(key)
                # A refund that arrived first (out of order) already decided it.
                state = held[key].state if key in held else None
                refunded = _revoked_at(state, request.transaction_id)
                await refund_requests_db.insert(
                    conn,
                    event.store,
                    request,
                    owner,
                    status="pending" if refunded is None else "refunded",
                    first_attempt=refunds.first_attempt(now, request.deadline, self._refund_delay),
                    decided_at=refunded,
                    now=now,
                )
                if owner is not None:
                    requested.add(owner)
            decision = refunds.DECISIONS.get(event.kind)
            if decision is not None and event.transaction is not None:
                await refund_requests_db.close(
                    conn,
                    store=event.store,
                    purchase_id=event.purchase_id,
                    transaction_id=event.transaction.transaction_id,
                    status=decision,
                    at=event.occurred_at,
                )
        return requested

    @staticmethod
    async def _audit_transfer(
        conn: asyncpg.Connection, transfer: Transfer, actor: Actor | None, now: datetime
    ) -> None:
        """Who moved a purchase, when and why, on both customers' trails. The purchase is
        named by a one-way reference (its store id may be personal data)."""
        ref = hashlib.sha256(transfer.purchase_id.encode()).hexdigest()[:12]
        who = actor.name if actor is not None else "store"
        why = "submitted by another user (customers.transfer_policy = transfer)"
        for customer, direction in ((transfer.from_user, "out"), (transfer.to_user, "in")):
            if customer is None:
                continue
            details = {"store": transfer.store.value, "purchase_ref": ref, "direction": direction}
            entry = AuditEntry(
                who,
                "transfer",
                customer,
                actor.request_id if actor else None,
                details | {"why": why},
            )
            await customers_db.audit(conn, entry, now)

    async def journal_seen(self, store: Store, message_id: str) -> bool:
        """True when the journal already holds this store message id (a cheap dedupe
        before a store API call; the journal insert in `ingest` stays the real guard)."""
        return await self._db(lambda conn: purchases_db.notification_seen(conn, store, message_id))

    async def states_of(
        self, store: Store, events: Sequence[StoreEvent]
    ) -> dict[tuple[Store, str], PurchaseState]:
        """The stored state of the purchases `events` touch (those that have one)."""
        ids = [purchase_id for _store, purchase_id in keys_to_lock(events)]
        return await self._db(lambda conn: reconcile_db.states_of(conn, store, ids))

    async def _db(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await run(self._pool, work)


def _revoked_at(state: PurchaseState | None, transaction_id: str) -> datetime | None:
    """When the stored state says `transaction_id` was refunded (None: it does not)."""
    if state is None:
        return None
    for tx in state.transactions:
        if tx.transaction_id == transaction_id and tx.revoked_at is not None:
            return tx.revoked_at
    return None


def _before(held: dict[tuple[Store, str], Held], state: PurchaseState) -> PurchaseState | None:
    """The stored state a write replaces (None for a new purchase)."""
    found = held.get((state.store, state.purchase_id))
    return found.state if found is not None else None
