"""`receiptd replay`: re-derive purchases from the journal with the production code path,
report each one whose stored state differs, and with `fix` write the re-derived state.

    the selected purchases (all, a customer's, those an entry received since a time touched),
    in pages of BATCH by row id
    → every journal entry applied to a page's purchases, in journal order
    → each entry re-derived by its store's adapter with the journaled store answers at the
      journaled `now` (`replaying`): a notification verified again (`reread`) and resolved,
      a submission submitted again, a reconciliation's statement (RECONCILE) refreshed
      again; it must ask the same questions, get the same verdict and touch the same
      purchases as when it was ingested, else it is not re-derivable
    → entitlements.replay folds them as ingest does and judges every purchase of the page
    → fix: one transaction per differing purchase (its row lock, a check that nothing was
      journaled for it meanwhile, the state and view, a `corrected` change-feed event and an
      audit row for its owner), then the owner's cached reads are invalidated
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from config.settings import Settings
from entitlements import customer_repository as crepo
from entitlements import replay_repository as rrepo
from entitlements import repository as repo
from entitlements.access import Catalog, entitlements_of
from entitlements.cache import CustomerCache, NoCache, RedisCustomerCache
from entitlements.customer_repository import AuditEntry
from entitlements.model import Clock, Store, StoreEvent
from entitlements.ownership import keys_to_lock
from entitlements.replay import Finding, JournalEntry, StoredPurchase, fold, judge, unusable
from entitlements.replay_repository import Selection
from entitlements.state import view
from receipts.errors import ReceiptError
from receipts.port import RECONCILE, SUBMISSION, Resolution, StoreAdapter
from receipts.recording import parse_reads_document, same_reads

BATCH = 200  # purchases per page: their entries are read and re-derived together
CORRECTED = "corrected"  # the change-feed type of a fix
ACTOR = "receiptd replay"  # the audit log's actor of a fix

# (purchases checked so far, purchases selected) after each page.
Progress = Callable[[int, int], None]


class NotRederivable(Exception):
    """A journal entry replay cannot re-derive; the message says why."""


@dataclass
class Summary:
    """Counts of one replay."""

    checked: int = 0
    differing: int = 0
    not_rederivable: int = 0
    fixed: int = 0
    entries: int = 0  # journal entries re-derived
    invalidated: int = 0  # customers whose cached reads a fix invalidated


Report = Callable[[Finding, str], None]  # a finding worth a line, and what was done


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
        self._rederived: dict[int, list[StoreEvent] | str] = {}  # the last page's entries

    async def run(
        self,
        selection: Selection,
        *,
        fix: bool,
        report: Report,
        progress: Progress | None = None,
    ) -> Summary:
        """Check every selected purchase; report those that differ or cannot be re-derived
        (`report(finding, "differs" | "fixed" | "not fixed" | "not re-derivable")`)."""
        summary = Summary()
        self._rederived = {}
        async with self._pool.acquire() as conn:
            since = await rrepo.journal_complete_since(conn)
            if selection.customer is not None:
                selection = replace(
                    selection, customer=await rrepo.customer_of(conn, selection.customer)
                )
            total = await rrepo.count_selected(conn, selection)
            after = 0
            while True:
                # The rows and their entries from one snapshot: ingest commits a journal
                # row with the state it produced, so a delivery arriving meanwhile is
                # either in both or in neither (never a false difference).
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    page = await rrepo.selected_page(conn, selection, after, self._batch)
                    stored = [purchase for _row_id, purchase in page]
                    entries = await self._entries(conn, stored)
                if not page:
                    break
                after = page[-1][0]
                for purchase, finding in await self._judge(stored, entries, since, summary):
                    await self._settle(
                        conn, purchase, finding, fix=fix, summary=summary, report=report
                    )
                if progress is not None:
                    progress(summary.checked, max(total, summary.checked))
        return summary

    # --- one page ----------------------------------------------------------------------

    @staticmethod
    async def _entries(
        conn: asyncpg.Connection, stored: Sequence[StoredPurchase]
    ) -> list[JournalEntry]:
        """Every entry applied to one of these purchases, in journal order."""
        entries: list[JournalEntry] = []
        for store in sorted({s.store for s in stored}):
            ids = [s.purchase_id for s in stored if s.store is store]
            entries += await rrepo.entries_touching(conn, store, ids)
        return sorted(entries, key=lambda e: e.id)

    async def _judge(
        self,
        stored: Sequence[StoredPurchase],
        entries: Sequence[JournalEntry],
        since: datetime | None,
        summary: Summary,
    ) -> list[tuple[StoredPurchase, Finding]]:
        blocked: dict[int, str] = {}
        batches: list[list[StoreEvent]] = []
        # An entry touching purchases of two pages (a history, a replaced token) is
        # re-derived once: the previous page's results are kept for this one.
        previous, self._rederived = self._rederived, {}
        for entry in entries:
            outcome = previous[entry.id] if entry.id in previous else unusable(entry)
            if outcome is None:
                try:
                    outcome = await self._rederive(entry)
                    summary.entries += 1
                except NotRederivable as exc:
                    outcome = str(exc)
            self._rederived[entry.id] = outcome
            if isinstance(outcome, str):
                blocked[entry.id] = outcome
            else:
                batches.append(outcome)
        states = fold(batches)
        touching: dict[tuple[Store, str], list[JournalEntry]] = {}
        for entry in entries:
            for purchase_id in entry.purchase_ids:
                touching.setdefault((entry.store, purchase_id), []).append(entry)
        return [
            (
                s,
                judge(
                    s,
                    states.get(s.key),
                    touching.get(s.key, []),
                    blocked,
                    journal_complete_since=since,
                ),
            )
            for s in stored
        ]

    async def _rederive(self, entry: JournalEntry) -> list[StoreEvent]:
        """The events of one entry, re-derived; NotRederivable when that cannot be exact."""
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
        return list(resolution.events)

    # --- one purchase --------------------------------------------------------------------

    async def _settle(
        self,
        conn: asyncpg.Connection,
        stored: StoredPurchase,
        finding: Finding,
        *,
        fix: bool,
        summary: Summary,
        report: Report,
    ) -> None:
        summary.checked += 1
        if finding.not_rederivable is not None:
            summary.not_rederivable += 1
            report(finding, "not re-derivable")
            return
        if not finding.differs:
            return
        summary.differing += 1
        if not fix:
            report(finding, "differs")
            return
        invalidated = await self._fix(conn, stored, finding)
        if invalidated is None:
            report(finding, "not fixed")  # journaled or changed meanwhile: replay again
            return
        summary.fixed += 1
        summary.invalidated += len(invalidated)
        report(finding, "fixed")

    async def _fix(
        self, conn: asyncpg.Connection, stored: StoredPurchase, finding: Finding
    ) -> set[str] | None:
        """Write the re-derived state in one transaction; the ids whose cached reads were
        invalidated, or None when the purchase changed since it was read."""
        replayed = finding.replayed
        assert replayed is not None
        now = self._clock()
        async with conn.transaction():
            locked = await rrepo.lock_for_fix(conn, stored.store, stored.purchase_id)
            if (
                locked is None
                or locked.state != stored.state
                or locked.latest_entry != max(finding.entry_ids)
            ):
                return None
            await repo.save_purchase(conn, replayed, view(replayed), locked.owner)
            owner = locked.owner
            if owner is None:
                return set()
            # An event even when the entitlements read as before the damage: whoever read
            # the damaged record (or cached it) should read again.
            await repo.record_changes(
                conn,
                [(owner, CORRECTED)],
                lambda record: entitlements_of(record, self._catalog, now),
                at=now,
                always={owner},
            )
            details = {
                "store": stored.store.value,
                "purchase_ref": purchase_ref(stored.purchase_id),
                "fields": [d.field for d in finding.differences],
            }
            await crepo.audit(conn, AuditEntry(ACTOR, "replay_fix", owner, None, details), now)
            users = {owner, *await repo.aliases_of(conn, [owner])}
        await self._cache.invalidate(users)
        return users


def purchase_ref(purchase_id: str) -> str:
    """A short one-way reference to a purchase (its store id may be a bearer token)."""
    return hashlib.sha256(purchase_id.encode()).hexdigest()[:12]


def describe(finding: Finding, outcome: str) -> str:
    """One report line: `<store> <ref> customer=<id> <outcome>: <what>`."""
    customer = finding.owner if finding.owner is not None else "-"
    head = f"{finding.store.value} {purchase_ref(finding.purchase_id)} customer={customer}"
    if finding.not_rederivable is not None:
        return f"{head} {outcome}: {finding.not_rederivable}"
    what = "; ".join(f"{d.field} {d.stored} → {d.replayed}" for d in finding.differences)
    return f"{head} {outcome}: {what}"


def summary_line(summary: Summary, *, fix: bool, cache: str) -> str:
    """The one line that ends every replay."""
    line = (
        f"replay: {summary.checked} purchases checked, {summary.differing} differ, "
        f"{summary.not_rederivable} not re-derivable, {summary.fixed} fixed "
        f"({summary.entries} journal entries re-derived)"
    )
    if fix and summary.fixed:
        line += f"; cache: {cache}"
    return line


@contextlib.asynccontextmanager
async def cache_for_fixes(
    settings: Settings, done: str = "fixed"
) -> AsyncIterator[tuple[CustomerCache, str]]:
    """The serving processes' cache, to invalidate what a fix (or a reconciliation: `done`)
    changes, and a phrase for the summary. Not reachable: a cached record lives at most
    `redis.cache_ttl_seconds`."""
    from redis import asyncio as aredis

    from server.embedded import EmbeddedRedis, redis_answers

    ttl = settings.redis.cache_ttl_seconds
    url = settings.redis.url.get_secret_value()
    if url.lower() == "off":
        yield NoCache(), "none configured"
        return
    if not url:  # embedded: the serving process's Redis on this data dir, if it runs
        url = f"unix://{EmbeddedRedis(settings.server.data_dir).socket_path}"
    if not await redis_answers(url):
        yield NoCache(), f"not reachable; cached reads may be stale for up to {ttl} s"
        return
    client = aredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    cache = RedisCustomerCache(client, ttl)
    try:
        yield cache, f"invalidated for the customers {done}"
    finally:
        await cache.aclose()
        await client.aclose()
