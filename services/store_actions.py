"""The console's store actions on one customer (console.actions.StoreActions), built here
because they need the store adapters:

    reread   each purchase of the customer asked of its store again (the adapter's
             `reread_requests` and `refresh`, as `receiptd reconcile` re-reads), journaled
             as a RECONCILE statement and applied when it changes what clients read
    replay   `receiptd replay --customer … --fix` for the customer (services.replay)

Each leaves an audit row with its counts (CustomerOperations.note).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

import asyncpg
import structlog

from cache.answers import CustomerCache
from entitlements.access import Catalog
from entitlements.audit import Actor
from entitlements.model import Clock, Store
from receipts.errors import ReceiptError
from receipts.port import Reconciling, StoreAdapter
from services.operations import CustomerOperations
from services.replay import Replayer
from services.store_messages import StoreMessages
from storage import reconcile as reconcile_db
from storage import replay as replay_db
from storage.database import run
from storage.reconcile import StalePurchase
from storage.replay import Selection

log = structlog.get_logger(__name__)


# The configured stores' adapters as `receiptd replay` builds them (offline: answers come from
# the journal); the composition root binds its settings.
ReplayStores = Callable[[], AbstractAsyncContextManager[Mapping[Store, StoreAdapter]]]


class ConsoleStore:
    """Implements console.actions.StoreActions for the serving app."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        messages: StoreMessages,
        catalog: Catalog,
        operations: CustomerOperations,
        adapters: Mapping[Store, Reconciling],
        replay_stores: ReplayStores,
        cache: CustomerCache,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._messages = messages
        self._catalog = catalog
        self._operations = operations
        self._replay_stores = replay_stores
        self._adapters = adapters
        self._cache = cache
        self._clock = clock

    async def reread(self, app_user_id: str, actor: Actor) -> str:
        """Re-read each of the customer's purchases from its store and apply what changed
        (noted in the audit log); a sentence saying how many changed and failed."""
        customer = await run(self._pool, lambda conn: replay_db.customer_of(conn, app_user_id))
        held = await run(self._pool, lambda conn: reconcile_db.customer_purchases(conn, customer))
        changed = failed = 0
        for store, purchase in held:
            adapter = self._adapters.get(store)
            try:
                if adapter is None:
                    raise ReceiptError(f"{store.value} is not configured")
                changed += await self._reread_one(adapter, purchase)
            except ReceiptError as exc:
                failed += 1
                log.info("console_reread_failed", store=store.value, error=type(exc).__name__)
        details = {"purchases": len(held), "changed": changed, "failed": failed}
        await self._operations.note(customer, "reread", actor, details)
        return (
            f"Re-read {len(held)} purchase(s) from the stores: {changed} changed, "
            f"{failed} could not be read."
        )

    async def _reread_one(self, adapter: Reconciling, purchase: StalePurchase) -> int:
        now = self._clock()
        request, resolution = await self._messages.refreshed(
            adapter, purchase.purchase_id, purchase.environment, purchase.app
        )
        return int(await self._messages.statement(adapter.store, request, resolution, now))

    async def replay(self, app_user_id: str, actor: Actor) -> str:
        """Replay the customer's purchases from the journal and fix those that differ (noted
        in the audit log); a sentence with the counts."""
        outcomes: list[str] = []
        async with self._replay_stores() as stores:
            replayer = Replayer(self._pool, stores, self._catalog, self._clock, self._cache)
            summary = await replayer.run(
                Selection(customer=app_user_id),
                fix=True,
                report=lambda _finding, outcome: outcomes.append(outcome),
            )
        details = {
            "checked": summary.checked,
            "differing": summary.differing,
            "fixed": summary.fixed,
            "not_rederivable": summary.not_rederivable,
        }
        await self._operations.note(app_user_id, "replay", actor, details)
        return (
            f"Replayed {summary.checked} purchase(s) from the journal: {summary.differing} "
            f"differed, {summary.fixed} fixed, {summary.not_rederivable} not re-derivable."
        )
