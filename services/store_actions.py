"""The console's store actions on one customer (console.actions.StoreActions), built here
because they need the store adapters:

    reread   each purchase of the customer asked of its store again (the adapter's
             `reread_requests` and `refresh`, as `receiptd reconcile` re-reads), journaled
             as a RECONCILE statement and applied when it changes what clients read
    replay   `receiptd replay --customer … --fix` for the customer (services.replay)

Each leaves an audit row with its counts (CustomerOperations.note).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from api.keys import (
    APPLE,
    CACHE,
    CLOCK,
    CONSOLE_STORE,
    GOOGLE,
    OPERATIONS,
    POOL,
    SERVICE,
    SETTINGS,
)
from cache.answers import CustomerCache
from config.settings import Settings
from entitlements.access import Catalog
from entitlements.model import Clock, Store
from entitlements.reconcile import corrections
from receipts.errors import PurchaseNotFound, ReceiptError
from receipts.port import Reconciling, Resolution
from server.stores import replay_stores
from services.ingest import EntitlementService
from services.operations import CustomerOperations
from services.reconcile import statement_row
from services.replay import Replayer
from storage import reconcile as rrepo
from storage import replay as replay_repository
from storage.customers import Actor
from storage.database import run
from storage.reconcile import StalePurchase
from storage.replay import Selection

log = structlog.get_logger(__name__)


class ConsoleStore:
    """Implements console.actions.StoreActions for the serving app."""

    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        service: EntitlementService,
        operations: CustomerOperations,
        adapters: Mapping[Store, Reconciling],
        cache: CustomerCache,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._service = service
        self._operations = operations
        self._adapters = adapters
        self._cache = cache
        self._clock = clock

    @property
    def _catalog(self) -> Catalog:
        return self._service.catalog

    async def reread(self, app_user_id: str, actor: Actor) -> str:
        customer = await run(
            self._pool, lambda conn: replay_repository.customer_of(conn, app_user_id)
        )
        held = await run(self._pool, lambda conn: rrepo.customer_purchases(conn, customer))
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
        request, resolution = await self._refreshed(adapter, purchase)
        if not resolution.events:
            return 0
        ids = [e.purchase_id for e in resolution.events]
        stored = await run(self._pool, lambda conn: rrepo.states_of(conn, adapter.store, ids))
        if not corrections(stored, resolution.events):
            return 0  # the store says what we hold: nothing to journal
        row = statement_row(adapter.store, request, resolution, now)
        outcome = await self._service.ingest(row, resolution.events, also=resolution.write)
        if outcome.status != "duplicate":
            await resolution.after_commit()
        return 1

    async def _refreshed(
        self, adapter: Reconciling, purchase: StalePurchase
    ) -> tuple[dict[str, Any], Resolution]:
        missing = PurchaseNotFound()
        for request in adapter.reread_requests(purchase.purchase_id, purchase.environment):
            try:
                return request, await adapter.refresh(request, self._clock())
            except PurchaseNotFound as exc:
                missing = exc
        raise missing

    async def replay(self, app_user_id: str, actor: Actor) -> str:
        outcomes: list[str] = []
        async with replay_stores(self._settings, self._pool, self._clock, self._catalog) as stores:
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


async def console_store_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the store adapters: the console's store actions over those configured."""
    adapters: dict[Store, Reconciling] = {}
    if APPLE in app:
        adapters[Store.APP_STORE] = app[APPLE]
    if GOOGLE in app:
        adapters[Store.PLAY_STORE] = app[GOOGLE]
    app[CONSOLE_STORE] = ConsoleStore(
        settings=app[SETTINGS],
        pool=app[POOL],
        service=app[SERVICE],
        operations=app[OPERATIONS],
        adapters=adapters,
        cache=app[CACHE],
        clock=app[CLOCK],
    )
    yield
