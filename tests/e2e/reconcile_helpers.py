"""Shared set-up for the reconciliation tests: the replay tests' app with both stores (their
fakes now also list what the store sent or voided), and reconciliation run in-process on
the test's database with the app's settings, the injected clock and the app's Redis."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from entitlements.model import Store
from entitlements.reconcile import Counts
from receipts.rate_limit import RateLimiter
from server.app import catalog_from
from server.bootstrap import cache_for_fixes
from server.stores import reconcile_store
from services.ingest import EntitlementService
from services.reconcile import Options, Outcome, Reconciler
from services.store_messages import StoreMessages
from simulators.play_purchases import voided_purchase as voided_item
from tests.e2e.replay_helpers import Stores, replay

__all__ = ["Observed", "counts", "nothing_to_replay", "reconcile", "voided_item"]


@dataclass
class Observed:
    """What a run reported: failed items, notes, and the places its progress named."""

    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def progress(self, counts: Counts, where: str, done: int | None, total: int | None) -> None:
        if not self.steps or self.steps[-1] != where:
            self.steps.append(where)

    def failed(self, label: str, reason: str) -> None:
        self.failures.append((label, reason))

    def note(self, text: str) -> None:
        self.notes.append(text)


async def reconcile(
    s: Stores,
    store: Store,
    *,
    since: datetime | None = None,
    stale_after: timedelta = timedelta(hours=24),
    restart: bool = False,
    batch: int = 3,
    voided_page_size: int | None = None,
) -> tuple[Outcome, Observed]:
    """One run of `receiptd reconcile` against the test's stores; (outcome, what it reported)."""
    observed = Observed()
    pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=3)
    try:
        catalog = catalog_from(s.settings)
        async with (
            cache_for_fixes(s.settings, "corrected") as (cache, _note),
            reconcile_store(
                s.settings, store, pool, s.clock, catalog, limiter=RateLimiter(1000)
            ) as built,
        ):
            source = built
            if voided_page_size is not None:
                source = dataclasses.replace(built, voided_page_size=voided_page_size)
            service = EntitlementService(pool, cache, catalog, s.clock)
            messages = StoreMessages(service, s.clock)
            reconciler = Reconciler(pool, messages, source, s.clock, observed, batch=batch)
            options = Options(since=since, stale_after=stale_after, restart=restart)
            outcome = await reconciler.run(options)
    finally:
        await pool.close()
    return outcome, observed


def counts(outcome: Outcome) -> tuple[int, int, int, int]:
    c = outcome.counts
    return c.checked, c.missing, c.corrected, c.failed


async def nothing_to_replay(s: Stores) -> None:
    """Replay re-derives every purchase, what reconciliation applied included."""
    summary, reported = await replay(s)
    assert [(f.purchase_id, o, f.differences, f.not_rederivable) for f, o in reported] == []
    assert summary.checked > 0
