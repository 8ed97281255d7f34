"""`receiptd reconcile apple|google`: ask a store what it sent or changed and apply what the
service missed, through the store message use case of the webhooks (services/store_messages.py:
the same adapters, journal and ingest, with the store answers each change came from), so
`receiptd replay` re-derives it.

    one run per store at a time (a session advisory lock); its arguments, window, position
    and counts live in `reconcile_runs`, saved with every item (a change commits together
    with its position), so an interrupted run resumes after the last item it completed
    steps: each listing of the store (Apple: an environment's notification history; Play: a
    package's voided purchases), page by page; then re-reads of the subscriptions we hold
    whose stored state is older than `stale_after`
    a listed notification (Apple) → verified and resolved exactly as the webhook does it;
      one already journaled (its store message id) is not missing
    a listed statement (a Play voided purchase) about a purchase we hold, or a re-read →
      the adapter's `refresh`; journaled (type RECONCILE) and applied only when it changes
      what clients read, a voided purchase under a message id of its own (a second run
      finds it applied)
    a store that cannot answer (StoreUnavailable), refuses a listing or sends a page we
    cannot read interrupts the run: run again to resume; an item it cannot use
    (verification, an unknown purchase) fails alone and the run goes on
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from entitlements.journal import JournalEntry
from entitlements.model import Clock, StoreEvent
from entitlements.ownership import Key, keys_to_lock
from entitlements.reconcile import Counts, Position, corrections, default_since
from receipts.errors import ReceiptError, StoreRequestRejected, StoreUnavailable
from receipts.port import Listed, Listing, Reconciling, Resolution
from receipts.rate_limit import RateLimiter
from services.replay import purchase_ref
from services.store_messages import Source, StoreMessages, entry
from storage import reconcile as reconcile_db
from storage.reconcile import Run, StalePurchase

BATCH = 100  # held purchases per page of re-reads
REREAD = "reread"  # the step that re-reads held subscriptions
RECOVERED = "recovered by reconciliation"  # the journal's reason of a notification it applied


@dataclass(frozen=True, slots=True)
class Options:
    """What a run was asked: the window's start (None: from a day before the end of the last
    clean run, else all the store keeps) and the age past which a held subscription is
    re-read. A run resumes only when asked the same; `restart` starts over anyway."""

    since: datetime | None = None
    stale_after: timedelta = timedelta(hours=24)
    restart: bool = False

    def arguments(self) -> dict[str, Any]:
        """The options as the run stores them (JSON), to tell whether a run was asked the
        same (`restart` is not part of it)."""
        since = self.since.isoformat() if self.since is not None else None
        return {"since": since, "stale_after_seconds": self.stale_after.total_seconds()}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The counts of the whole run (a resumed run's too) and, when it stopped before its
    end, why (run again to resume)."""

    counts: Counts
    interrupted: str | None = None


class AlreadyRunning(Exception):
    """Another reconciliation of this store is running."""


class Observer(Protocol):
    """Where a run reports: its progress, each item that failed, and notes for the operator."""

    def progress(self, counts: Counts, where: str, done: int | None, total: int | None) -> None:
        """After each page fetched and each item."""

    def failed(self, label: str, reason: str) -> None:
        """An item that could not be checked or applied."""

    def note(self, text: str) -> None:
        """Something the operator should know (a clamped window, a resumed run)."""


class _Interrupted(Exception):
    """The run cannot go on now; the message says why."""


class Reconciler:
    """Reconciles one store (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        messages: StoreMessages,
        source: Reconciling,
        clock: Clock,
        observer: Observer,
        *,
        batch: int = BATCH,
        list_limiter: RateLimiter | None = None,
    ) -> None:
        self._pool = pool
        self._messages = messages
        self._source = source
        self._store = source.store
        self._clock = clock
        self._observer = observer
        self._batch = batch
        self._list_limiter = list_limiter
        self._counts = Counts()
        self._covered: set[Key] = set()  # purchases a read of this run already covered

    async def run(self, options: Options) -> Outcome:
        """One run, or the rest of an interrupted one (AlreadyRunning: another holds it)."""
        async with self._pool.acquire() as conn:
            # Released by the pool's reset too, should this connection end mid-run.
            if not await reconcile_db.try_lock(conn, self._store):
                raise AlreadyRunning
            outcome = await self._run(conn, options)
            await reconcile_db.unlock(conn, self._store)
        return outcome

    async def _run(self, conn: asyncpg.Connection, options: Options) -> Outcome:
        self._conn = conn
        run = await self._open(options)
        self._run_id, self._counts = run.id, run.counts
        listings = self._source.listings(run.since, run.until, self._clock())
        for listing in listings:
            if listing.clamped:
                since = listing.since.isoformat(timespec="seconds").replace("+00:00", "Z")
                self._observer.note(f"{listing.title}: the store keeps less; from {since}")
        steps = [f"list:{listing.name}" for listing in listings] + [REREAD]
        first = steps.index(run.position.step) if run.position.step in steps else 0
        try:
            for index in range(first, len(steps)):
                here = run.position if index == first else Position(steps[index])
                if here.step != steps[index]:
                    here = Position(steps[index])
                if index < len(listings):
                    await self._listing(listings[index], here)
                else:
                    await self._rereads(here, run.until - options.stale_after)
                if index + 1 < len(steps):
                    await self._save(Position(steps[index + 1]))
        except ReceiptError as exc:  # the store cannot answer, or answered a page we cannot read
            return Outcome(self._counts, f"{exc.code}: {exc.message}")
        except _Interrupted as exc:
            return Outcome(self._counts, str(exc))
        await reconcile_db.close(conn, run.id, self._clock(), finished=True)
        return Outcome(self._counts)

    async def _open(self, options: Options) -> Run:
        """The interrupted run asked the same (resumed), else a new one."""
        now = self._clock()
        arguments = options.arguments()
        run = await reconcile_db.open_run(self._conn, self._store)
        if run is not None:
            started = run.started_at.isoformat(timespec="seconds").replace("+00:00", "Z")
            if not options.restart and dict(run.arguments) == arguments:
                self._observer.note(f"resuming the run started {started} (--restart starts over)")
                return run
            await reconcile_db.close(self._conn, run.id, now, finished=False)
            why = "--restart" if options.restart else "asked otherwise"
            self._observer.note(f"abandoned the interrupted run started {started} ({why})")
        since = options.since
        if since is None:
            since = default_since(await reconcile_db.last_clean_until(self._conn, self._store))
        return await reconcile_db.start_run(
            self._conn, self._store, arguments, since=since, until=now, now=now
        )

    # --- listings ------------------------------------------------------------------------

    async def _listing(self, listing: Listing, here: Position) -> None:
        """Every page of one listing, from `here` on."""
        step = f"list:{listing.name}"
        cursor, skip, restarted, page = here.cursor, here.done, False, 0
        while listing.since < listing.until:
            page += 1
            self._progress(f"{listing.title}, page {page}")
            if self._list_limiter is not None:
                await self._list_limiter.wait()
            try:
                listed = await self._source.list_page(listing, cursor)
            except StoreRequestRejected as exc:
                if cursor is None or restarted:
                    raise _Interrupted(f"{listing.title}: {exc.message}") from exc
                # A page token kept too long (the store let it expire): idempotency makes
                # listing again from the start harmless.
                self._observer.note(f"{listing.title}: the saved page is gone; from the start")
                cursor, skip, restarted, page = None, 0, True, 0
                continue
            for index, item in enumerate(listed.items):
                if index >= skip:
                    await self._listed(item, Position(step, cursor, index + 1))
                    self._progress(f"{listing.title}, page {page}")
            skip = 0
            if listed.cursor is None:
                return
            cursor = listed.cursor
            await self._save(Position(step, cursor))

    async def _listed(self, item: Listed, position: Position) -> None:
        now = self._clock()
        try:
            if item.body is not None:
                applied = await self._notification(item.body, position, now)
            elif item.request is not None and await self._held(item.purchase_id):
                resolution = await self._source.refresh(item.request, now)
                applied = await self._statement(
                    item.request,
                    resolution,
                    position,
                    now,
                    message_id=item.message_id,
                    stated_at=item.stated_at,
                )
            else:
                applied = False  # about a purchase we do not hold: nothing to correct
        except StoreUnavailable:
            raise
        except ReceiptError as exc:
            await self._failed(item.label, exc, position)
            return
        if not applied:
            await self._save(position, self._counts.plus(checked=1))

    async def _notification(self, body: bytes, position: Position, now: datetime) -> bool:
        """A notification the store sent: exactly the webhook's path (receive, the journal's
        dedupe, resolve, ingest). True when it was missing (and is applied now)."""
        inbound = await self._source.receive(None, body)
        if await self._messages.seen(inbound):
            return False
        resolution = await self._messages.resolve(self._source, inbound, now)
        resolution = replace(resolution, reason=resolution.reason or RECOVERED)
        changed = await self._corrections(resolution.events)
        return await self._apply(
            entry(Source.of_inbound(inbound), resolution, now), resolution, changed, position
        )

    async def _statement(
        self,
        request: Mapping[str, Any],
        resolution: Resolution,
        position: Position,
        now: datetime,
        *,
        message_id: str | None = None,
        stated_at: datetime | None = None,
    ) -> bool:
        """A refresh's events, journaled and applied when they change what clients read."""
        changed = await self._corrections(resolution.events)
        if not changed:
            return False
        source = Source.of_statement(
            self._store, request, resolution, message_id=message_id, stated_at=stated_at
        )
        return await self._apply(entry(source, resolution, now), resolution, changed, position)

    async def _apply(
        self, row: JournalEntry, resolution: Resolution, changed: list[Key], position: Position
    ) -> bool:
        """Ingest with the run's position and counts in the same transaction. False when the
        journal already had the message (a webhook or another run got there first)."""
        counts = self._counts.plus(checked=1, missing=1, corrected=1 if changed else 0)

        async def position_saved(conn: asyncpg.Connection) -> None:
            await reconcile_db.save(conn, self._run_id, position, counts, self._clock())

        outcome = await self._messages.record(
            row, resolution, also=position_saved, follow_up="stored"
        )
        if outcome.status == "duplicate":
            return False
        self._counts = counts
        return True

    # --- re-reads ------------------------------------------------------------------------

    async def _rereads(self, here: Position, before: datetime) -> None:
        """Re-read every held subscription whose state is older than `before`."""
        after = int(here.cursor) if here.cursor and here.cursor.isdigit() else 0
        total = await reconcile_db.count_stale(self._conn, self._store, before, after)
        done = 0
        self._progress("re-reading held subscriptions", done, total)
        while page := await reconcile_db.stale_page(
            self._conn, self._store, before, after, self._batch
        ):
            for stale in page:
                position = Position(REREAD, str(stale.row_id))
                if (self._store, stale.purchase_id) in self._covered:
                    await self._save(position, self._counts.plus(checked=1))  # read already
                else:
                    await self._reread(stale, position)
                after, done = stale.row_id, done + 1
                self._progress("re-reading held subscriptions", done, max(total, done))

    async def _reread(self, stale: StalePurchase, position: Position) -> None:
        now = self._clock()
        try:
            request, resolution = await self._messages.refreshed(
                self._source, stale.purchase_id, stale.environment, stale.app
            )
            self._covered.update(keys_to_lock(resolution.events))
            applied = await self._statement(request, resolution, position, now)
        except StoreUnavailable:
            raise
        except ReceiptError as exc:
            await self._failed(f"purchase {purchase_ref(stale.purchase_id)}", exc, position)
            return
        if not applied:
            await self._save(position, self._counts.plus(checked=1))

    # --- bookkeeping ---------------------------------------------------------------------

    async def _held(self, purchase_id: str | None) -> bool:
        if purchase_id is None:
            return False
        return await reconcile_db.is_held(self._conn, self._store, purchase_id)

    async def _corrections(self, events: Sequence[StoreEvent]) -> list[Key]:
        if not events:
            return []
        ids = [purchase_id for _store, purchase_id in keys_to_lock(events)]
        return corrections(await reconcile_db.states_of(self._conn, self._store, ids), events)

    async def _failed(self, label: str, exc: ReceiptError, position: Position) -> None:
        self._observer.failed(label, f"{exc.code}: {exc.message}")
        await self._save(position, self._counts.plus(checked=1, failed=1))

    async def _save(self, position: Position, counts: Counts | None = None) -> None:
        if counts is not None:
            self._counts = counts
        await reconcile_db.save(self._conn, self._run_id, position, self._counts, self._clock())

    def _progress(self, where: str, done: int | None = None, total: int | None = None) -> None:
        self._observer.progress(self._counts, where, done, total)


def summary_line(store: str, counts: Counts) -> str:
    """The one line that ends every run."""
    return (
        f"reconcile {store}: checked {counts.checked}, missing {counts.missing}, "
        f"corrected {counts.corrected}, failed {counts.failed}"
    )
