"""`receiptd replay`: re-derive purchases from the journal with the production code path,
report each one whose stored state differs or whose row is gone, and with `fix` write the
re-derived state (recreating a lost row).

    the selected purchases, in pages: the stored ones by row id, then those the journal
    names that have no row (by the first entry naming them; then those only the owner
    record names: stored before the journal kept submissions)
    → every journal entry applied to a page's purchases, in journal order
    → each entry re-derived by its store's adapter with the journaled store answers at the
      journaled `now` (`replaying`): a notification verified again (`reread`) and resolved,
      a submission submitted again, a reconciliation's statement (RECONCILE) refreshed
      again; it must ask the same questions, get the same verdict and touch the same
      purchases as when it was ingested, else it is not re-derivable. An erasure's entry
      (ERASURE) gives the state it kept.
    → entitlements.replay folds them as ingest does and judges every purchase of the page,
      with the owner the journal recorded (purchase_owners)
    → fix: one transaction per purchase (its row lock, a check that nothing was journaled
      for it meanwhile, the state, view and owner, a change-feed event and an audit row for
      each owner concerned: `corrected`, or `restored` for a recreated row), then the
      owners' cached reads are invalidated

A run in several processes (`--jobs`, server/replay_jobs.py) gives each a `Part` of every
source, starts each at its saved `Position` and saves it after each page (`Checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from cache.answers import CustomerCache
from entitlements.access import Catalog, entitlements_of
from entitlements.audit import AuditEntry
from entitlements.codec import from_jsonable
from entitlements.model import Clock, PurchaseState, Store
from entitlements.money import charges_of
from entitlements.ownership import keys_to_lock
from entitlements.replay import (
    Finding,
    JournalEntry,
    MissingPurchase,
    Owner,
    Rederived,
    StoredPurchase,
    describe,
    fold,
    judge,
    judge_missing,
    link_hints,
    owner_of,
    purchase_ref,
    unusable,
)
from entitlements.state import view
from receipts.errors import ReceiptError
from receipts.port import RECONCILE, SUBMISSION, Resolution, StoreAdapter
from receipts.recording import parse_reads_document, same_reads
from services.operations import PSEUDONYM_PREFIX
from storage import customers as customers_db
from storage import money as money_db
from storage import purchases as purchases_db
from storage import replay as replay_db
from storage.replay import WHOLE, Part, Selection

BATCH = 200  # purchases per page: their entries are read and re-derived together
CORRECTED = "corrected"  # the change-feed type of a fix
# The change-feed type of a recreated purchase: its owner reads it again (the entitlements
# may read as before the loss), and a consumer can tell a lost row from a corrected one.
RESTORED = "restored"
ACTOR = "receiptd replay"  # the audit log's actor of a fix
__all__ = [
    "Checkpoint",
    "Position",
    "Replayer",
    "Summary",
    "describe",
    "purchase_ref",
    "summary_line",
]

# (purchases checked so far, purchases selected) after each page.
Progress = Callable[[int, int], None]
Subject = StoredPurchase | MissingPurchase
# One source of pages: (connection, position after the last page, limit) → (position, subject).
Fetch = Callable[[asyncpg.Connection, Any, int], Awaitable[Sequence[tuple[Any, Subject]]]]


class NotRederivable(Exception):
    """A journal entry replay cannot re-derive; the message says why."""


class _Changed(Exception):
    """The purchase was journaled or written since it was read: the fix rolls back."""


@dataclass
class Summary:
    """Counts of one replay."""

    checked: int = 0
    differing: int = 0  # stored purchases that differ (and are re-derivable)
    missing: int = 0  # purchases the journal names whose row is gone
    not_rederivable: int = 0
    fixed: int = 0  # differing purchases written and missing ones recreated
    ownerless: int = 0  # recreated without a known owner
    # Journal entries re-derived that touch one purchase only, one of their page's: no other
    # page (or part of a parallel run) re-derives them.
    rederived: int = 0
    invalidated: int = 0  # customers whose cached reads a fix invalidated
    # The other entries re-derived (several purchases, or another purchase's history that a
    # lost row followed): other pages may re-derive them too, so they count by id.
    shared: set[int] = field(default_factory=set)

    @property
    def entries(self) -> int:
        """Distinct journal entries re-derived."""
        return self.rederived + len(self.shared)

    def counts(self) -> dict[str, int]:
        """The counts but the shared entries (saved with a part's position)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "shared"
        }

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> Summary:
        """A summary from saved `counts()` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"shared"}
        summary = cls()
        for name, value in counts.items():
            if name in names:
                setattr(summary, name, int(value))
        return summary

    @property
    def clean(self) -> bool:
        """Nothing differs or is missing that was not fixed (exit code 0); a purchase
        recreated without a known owner is not fixed."""
        return self.fixed == self.differing + self.missing and self.ownerless == 0


Report = Callable[[Finding, str], None]  # a finding worth a line, and what was done


@dataclass(frozen=True, slots=True)
class Position:
    """Where a run is: the source (0 stored purchases, 1 lost ones the journal names, 2 lost
    ones only the owner record names; 3 done) and the last page's cursor in it (None: its
    start). JSON-shaped: a cursor is an int or a list."""

    source: int = 0
    after: Any = None


DONE = Position(3, None)
# After each page: (connection, the position after it, the summary so far, the ids of the
# shared entries it re-derived). The connection is free (no transaction open).
Checkpoint = Callable[[asyncpg.Connection, Position, Summary, set[int]], Awaitable[None]]


class Replayer:
    """Replays the journal against the stored purchases (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        adapters: Mapping[Store, StoreAdapter],
        catalog: Catalog,
        clock: Clock,
        cache: CustomerCache,
        *,
        batch: int = BATCH,
    ) -> None:
        self._pool = pool
        self._adapters = adapters
        self._catalog = catalog
        self._clock = clock
        self._cache = cache
        self._batch = batch
        self._rederived: dict[int, Rederived | str] = {}  # the last page's entries
        self._shared: set[int] = set()  # the shared entries the last page re-derived

    async def run(
        self,
        selection: Selection,
        *,
        fix: bool,
        report: Report,
        progress: Progress | None = None,
        part: Part = WHOLE,
        start: Position | None = None,
        summary: Summary | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Summary:
        """Check every selected purchase, stored or missing; report those that differ, are
        missing or cannot be re-derived (`report(finding, outcome)`, outcome one of
        "differs", "fixed", "not fixed", "not re-derivable", "missing", "recreated",
        "recreated without a known owner", "not recreated", "missing, not re-derivable").

        A part of a parallel run checks only `part`'s share, from `start` (after the pages
        a `summary` so far counts), and calls `checkpoint` after each page; its progress
        total is then that of its share only when known, else of the whole selection."""
        summary = summary if summary is not None else Summary()
        start = start or Position()
        self._rederived = {}
        async with self._pool.acquire() as conn:
            since = await replay_db.journal_complete_since(conn)
            if selection.customer is not None:
                selection = replace(
                    selection, customer=await replay_db.customer_of(conn, selection.customer)
                )
            total = 0
            if progress is not None:
                total = await replay_db.count_selected(conn, selection)
                total += await replay_db.count_missing(conn, selection)
            sources: list[tuple[Fetch, Any]] = [
                (lambda c, after, n: replay_db.selected_page(c, selection, after, n, part), 0),
                (
                    lambda c, after, n: replay_db.missing_page(c, selection, after, n, part),
                    (0, ""),
                ),
                (
                    lambda c, after, n: replay_db.unjournaled_page(c, selection, after, n, part),
                    ("", ""),
                ),
            ]
            for index, (fetch, first) in enumerate(sources):
                if index < start.source:
                    continue
                after = first
                if index == start.source and start.after is not None:
                    after = tuple(start.after) if isinstance(start.after, list) else start.after
                async for subjects, entries, cursor in self._pages(conn, fetch, after):
                    judged = await self._judge(conn, subjects, entries, since, summary)
                    for subject, finding in judged:
                        await self._settle(
                            conn, subject, finding, fix=fix, summary=summary, report=report
                        )
                    if progress is not None:
                        progress(summary.checked, max(total, summary.checked))
                    if checkpoint is not None:
                        here = Position(
                            index, list(cursor) if isinstance(cursor, tuple) else cursor
                        )
                        await checkpoint(conn, here, summary, self._shared)
        return summary

    # --- one page ----------------------------------------------------------------------

    async def _pages(
        self, conn: asyncpg.Connection, fetch: Fetch, after: Any
    ) -> AsyncIterator[tuple[list[Subject], list[JournalEntry], Any]]:
        """The pages of one source, each with every entry applied to its purchases and the
        cursor after it."""
        while True:
            # The rows and their entries from one snapshot: ingest commits a journal
            # row with the state it produced, so a delivery arriving meanwhile is
            # either in both or in neither (never a false difference).
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                page = await fetch(conn, after, self._batch)
                subjects = [subject for _position, subject in page]
                entries = await self._entries(conn, subjects)
            if not page:
                return
            after = page[-1][0]
            yield subjects, entries, after

    @staticmethod
    async def _entries(conn: asyncpg.Connection, subjects: Sequence[Subject]) -> list[JournalEntry]:
        """Every entry applied to one of these purchases, in journal order. For a lost row
        whose owner was not recorded, also every entry of the purchases its entries touch,
        transitively: the owner of the purchase it replaced may be its owner."""
        found: dict[int, JournalEntry] = {}
        asked: set[tuple[Store, str]] = set()
        wanted = {s.key for s in subjects}
        follow = {s.key for s in subjects if isinstance(s, MissingPurchase) and not s.recorded}
        while new := wanted - asked:
            for store in sorted({key[0] for key in new}):
                ids = [purchase_id for key_store, purchase_id in new if key_store is store]
                for entry in await replay_db.entries_touching(conn, store, ids):
                    found[entry.id] = entry
            asked |= new
            for entry in found.values():
                keys = {(entry.store, purchase_id) for purchase_id in entry.purchase_ids}
                if keys & follow:
                    follow |= keys
                    wanted |= keys
        return sorted(found.values(), key=lambda e: e.id)

    async def _judge(
        self,
        conn: asyncpg.Connection,
        subjects: Sequence[Subject],
        entries: Sequence[JournalEntry],
        since: datetime | None,
        summary: Summary,
    ) -> list[tuple[Subject, Finding]]:
        blocked, batches = await self._rederive_page(subjects, entries, summary)
        # Owners by the store's statements count only where none was recorded: their link
        # hints then stand for today's customers.
        hints = link_hints(batches) if any(s.recorded is None for s in subjects) else set()
        folded = fold(batches, await purchases_db.resolve_aliases(conn, hints) if hints else {})
        touching: dict[tuple[Store, str], list[JournalEntry]] = {}
        for entry in entries:
            for purchase_id in entry.purchase_ids:
                touching.setdefault((entry.store, purchase_id), []).append(entry)
        judged: list[tuple[Subject, Finding]] = []
        for s in subjects:
            state, mine = folded.states.get(s.key), touching.get(s.key, [])
            owner = owner_of(s.recorded, folded.owners.get(s.key))
            if isinstance(s, StoredPurchase):
                finding = judge(s, state, mine, blocked, journal_complete_since=since, owner=owner)
            else:
                finding = judge_missing(
                    s, state, mine, blocked, journal_complete_since=since, owner=owner
                )
            judged.append((s, finding))
        return judged

    async def _rederive_page(
        self, subjects: Sequence[Subject], entries: Sequence[JournalEntry], summary: Summary
    ) -> tuple[dict[int, str], list[Rederived]]:
        """Every entry of a page re-derived and counted: (why each blocked one is not
        re-derivable, the others' results in journal order)."""
        blocked: dict[int, str] = {}
        batches: list[Rederived] = []
        # An entry touching purchases of two pages (a history, a replaced token) is
        # re-derived once: the previous page's results are kept for this one.
        previous, self._rederived = self._rederived, {}
        keys = {s.key for s in subjects}
        self._shared = set()
        for entry in entries:
            outcome = previous[entry.id] if entry.id in previous else unusable(entry)
            if outcome is None:
                try:
                    if entry.is_checkpoint:
                        outcome = _checkpoint(entry)
                    else:
                        outcome = await self._rederive(entry)
                except NotRederivable as exc:
                    outcome = str(exc)
                else:
                    # By number when only this page can re-derive it (it touches one
                    # purchase, one of the page's), else by id: other pages and parts may.
                    if (
                        len(entry.purchase_ids) == 1
                        and (entry.store, entry.purchase_ids[0]) in keys
                    ):
                        summary.rederived += 1
                    else:
                        summary.shared.add(entry.id)
                        self._shared.add(entry.id)
            self._rederived[entry.id] = outcome
            if isinstance(outcome, str):
                blocked[entry.id] = outcome
            else:
                batches.append(outcome)
        return blocked, batches

    async def _rederive(self, entry: JournalEntry) -> Rederived:
        """One store statement or submission, re-derived; NotRederivable when that cannot be
        exact."""
        where = f"journal entry {entry.id}"
        adapter = self._adapters.get(entry.store)
        if adapter is None:
            raise NotRederivable(f"{where}: {entry.store.value} is not configured")
        assert entry.payload is not None  # `unusable` said so
        assert entry.reads is not None
        try:
            now, reads = parse_reads_document(entry.reads)
            structured = entry.notification_type in (SUBMISSION, RECONCILE)
            body = json.loads(entry.payload) if structured else None
        except (ValueError, KeyError, TypeError) as exc:
            raise NotRederivable(f"{where}: unreadable ({type(exc).__name__})") from exc
        replaying = adapter.replaying(reads)
        try:
            if body is not None and entry.notification_type == RECONCILE:
                resolution = await replaying.refresh(body, now)
            elif body is not None:
                resolution = await replaying.submit(body, now)
            else:
                inbound = await replaying.reread(entry.payload)
                if inbound.message_id != entry.message_id:
                    raise NotRederivable(f"{where}: the payload is another message")
                if inbound.settled is not None:
                    resolution = Resolution([], result=inbound.settled)
                else:
                    resolution = await replaying.resolve(inbound, now)
        except ReceiptError as exc:
            raise NotRederivable(f"{where}: {exc.code}") from exc
        touched = sorted({purchase_id for _store, purchase_id in keys_to_lock(resolution.events)})
        if resolution.result != entry.result:
            raise NotRederivable(f"{where}: now {resolution.result}, was {entry.result}")
        if not same_reads(resolution.reads, reads):
            raise NotRederivable(f"{where}: asks the store other questions than it did")
        if touched != sorted(entry.purchase_ids):
            raise NotRederivable(f"{where}: now touches other purchases than it did")
        return Rederived(tuple(resolution.events), submitted=entry.notification_type == SUBMISSION)

    # --- one purchase --------------------------------------------------------------------

    async def _settle(
        self,
        conn: asyncpg.Connection,
        subject: Subject,
        finding: Finding,
        *,
        fix: bool,
        summary: Summary,
        report: Report,
    ) -> None:
        summary.checked += 1
        summary.missing += finding.missing
        if finding.not_rederivable is not None:
            summary.not_rederivable += 1
            report(finding, "missing, not re-derivable" if finding.missing else "not re-derivable")
            return
        if not finding.differs:
            return
        summary.differing += not finding.missing
        if not fix:
            report(finding, "missing" if finding.missing else "differs")
            return
        try:
            if isinstance(subject, MissingPurchase):
                invalidated, finding = await self._recreate(conn, subject, finding)
            else:
                assert isinstance(subject, StoredPurchase)
                invalidated = await self._fix(conn, subject, finding)
        except _Changed:  # journaled or changed meanwhile: replay again
            report(finding, "not recreated" if finding.missing else "not fixed")
            return
        summary.fixed += 1
        summary.invalidated += len(invalidated)
        assert finding.replayed_owner is not None
        if not finding.missing:
            report(finding, "fixed")
        elif finding.replayed_owner.source == "unknown":
            summary.ownerless += 1
            report(finding, "recreated without a known owner")
        else:
            report(finding, "recreated")

    async def _fix(
        self, conn: asyncpg.Connection, stored: StoredPurchase, finding: Finding
    ) -> set[str]:
        """Write the re-derived state (and the recorded owner, if it differs) in one
        transaction; the ids whose cached reads were invalidated. _Changed when the purchase
        changed since it was read."""
        replayed = finding.replayed
        assert replayed is not None
        assert finding.replayed_owner is not None
        moved = any(d.field == "owner" for d in finding.differences)
        owner = finding.replayed_owner.app_user_id if moved else stored.owner
        now = self._clock()
        async with conn.transaction():
            locked = await replay_db.lock_for_fix(conn, stored.store, stored.purchase_id)
            if (
                locked is None
                or locked.state != stored.state
                or locked.owner != stored.owner
                or locked.latest_entry != max(finding.entry_ids)
            ):
                raise _Changed
            if owner is not None and not await _ensure_owner(conn, owner):
                raise _Changed  # a pseudonym without its row: never re-created
            await purchases_db.save_purchase(conn, replayed, view(replayed), owner)
            await money_db.record(conn, charges_of(replayed), now)  # any charge not counted
            owners = sorted({o for o in (stored.owner, owner) if o is not None})
            # An event even when the entitlements read as before the damage: whoever read
            # the damaged record (or cached it) should read again.
            await purchases_db.record_changes(
                conn,
                [(o, CORRECTED) for o in owners],
                lambda record: entitlements_of(record, self._catalog, now),
                at=now,
                always=set(owners),
            )
            details = {
                "store": stored.store.value,
                "purchase_ref": purchase_ref(stored.purchase_id),
                "fields": [d.field for d in finding.differences],
            }
            for o in owners:
                await customers_db.audit(
                    conn, AuditEntry(ACTOR, "replay_fix", o, None, details), now
                )
            users = {*owners, *await purchases_db.aliases_of(conn, owners)} if owners else set()
        await self._cache.invalidate(users)
        return users

    async def _recreate(
        self, conn: asyncpg.Connection, missing: MissingPurchase, finding: Finding
    ) -> tuple[set[str], Finding]:
        """Recreate a lost row in one transaction: state, view, owner, first-stored time; its
        owner gets a `restored` event and an audit row. The ids whose cached reads were
        invalidated, and the finding as written (an owner that cannot be restored is
        unknown). _Changed when the purchase was journaled or stored meanwhile."""
        replayed, source = finding.replayed, finding.replayed_owner
        assert replayed is not None
        assert source is not None
        owner = source.app_user_id
        now = self._clock()
        async with conn.transaction():
            locked = await purchases_db.lock_purchase(conn, missing.store, missing.purchase_id)
            latest = await replay_db.latest_entry(conn, missing.store, missing.purchase_id)
            if locked.state is not None or latest != max(finding.entry_ids):
                raise _Changed  # rolls back the row lock_purchase created
            if owner is not None and not await _ensure_owner(conn, owner):
                owner, source = None, Owner(None, "unknown")
                finding = dataclasses.replace(finding, replayed_owner=source)
            await purchases_db.save_purchase(conn, replayed, view(replayed), owner)
            await money_db.record(conn, charges_of(replayed), now)
            if missing.recorded is not None:
                created_at = missing.recorded.purchase_created_at
                await replay_db.restore_created_at(
                    conn, missing.store, missing.purchase_id, created_at
                )
            if owner is None:
                return set(), finding
            await purchases_db.record_changes(
                conn,
                [(owner, RESTORED)],
                lambda record: entitlements_of(record, self._catalog, now),
                at=now,
                always={owner},
            )
            details = {
                "store": missing.store.value,
                "purchase_ref": purchase_ref(missing.purchase_id),
                "owner": source.source,
            }
            entry = AuditEntry(ACTOR, "replay_restore", owner, None, details)
            await customers_db.audit(conn, entry, now)
            users = {owner, *await purchases_db.aliases_of(conn, [owner])}
        await self._cache.invalidate(users)
        return users, finding


def _checkpoint(entry: JournalEntry) -> Rederived:
    """The state an erasure's entry kept."""
    try:
        return Rederived(checkpoint=from_jsonable(PurchaseState, entry.checkpoint))
    except (ValueError, KeyError, TypeError) as exc:
        what = type(exc).__name__
        raise NotRederivable(f"journal entry {entry.id}: unreadable ({what})") from exc


async def _ensure_owner(conn: asyncpg.Connection, owner: str) -> bool:
    """Make sure the owner's customer row exists, as ingest does when it links one; False for
    an erasure's pseudonym whose row is gone (never re-created as a customer)."""
    if await customers_db.customer_exists(conn, owner):
        return True
    if owner.startswith(PSEUDONYM_PREFIX):
        return False
    await purchases_db.ensure_customer(conn, owner)
    return True


def summary_line(summary: Summary, *, fix: bool, cache: str) -> str:
    """The one line that ends every replay."""
    line = (
        f"replay: {summary.checked} purchases checked, {summary.differing} differ, "
        f"{summary.missing} missing, {summary.not_rederivable} not re-derivable, "
        f"{summary.fixed} fixed ({summary.entries} journal entries re-derived)"
    )
    if summary.ownerless:
        line += f", {summary.ownerless} recreated without a known owner"
    if fix and summary.fixed:
        line += f"; cache: {cache}"
    return line
