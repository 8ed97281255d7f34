"""Support acting on the stores for one customer (contract §3, "Refund requests and store
actions"): extend every renewing subscription (Apple's Extend a Subscription Renewal Date,
Play's deferral), revoke a Play purchase with a refund.

The rules are checked before any store is asked (a clear 422, nothing asked): Apple takes
1 to 90 days and two extensions per subscription in 365 days, Play a deferral of up to a
year; a revocation needs a full or prorated refund (a one-time product: full), and the App
Store cannot revoke at all. Each store answer is kept (`store_actions`, exported with the
customer) and noted in the audit log; then the purchase is re-read from its store, so its
state changes only as the store states it (the re-read is journaled like any statement, and
the store's own notification — RENEWAL_EXTENDED, a Play RTDN — confirms it again later).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from entitlements.audit import Actor
from entitlements.errors import ActionRejected
from entitlements.model import Clock, Store
from receipts.errors import ReceiptError
from receipts.port import ActionOutcome, ActionTarget, Reconciling, StoreActing
from services.operations import CustomerOperations
from services.store_messages import StoreMessages
from storage import replay as replay_db
from storage import store_actions as db
from storage.database import run

log = structlog.get_logger(__name__)

REASONS = ("customer_satisfaction", "service_outage", "other")
REFUNDS = ("full", "prorated", "none")
APPLE_MAX_DAYS = 90
APPLE_PER_YEAR = 2
PLAY_MAX_DAYS = 365
_RENEWING = ("active", "grace_period")


class SupportActions:
    """Extend and revoke for the API (and the console)."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        acting: Mapping[Store, StoreActing],
        rereading: Mapping[Store, Reconciling],
        messages: StoreMessages,
        operations: CustomerOperations,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._acting = acting
        self._rereading = rereading
        self._messages = messages
        self._operations = operations
        self._clock = clock

    async def extend(
        self, app_user_id: str, days: int, reason: str, actor: Actor
    ) -> list[dict[str, Any]]:
        """Extend each renewing subscription of the customer by `days`; what each store
        answered."""
        if reason not in REASONS:
            raise ActionRejected(
                f"reason must be one of {', '.join(REASONS)}", code="invalid_reason"
            )
        customer, held = await self._held(app_user_id)
        targets = [
            (Store(r["store"]), _target(r))
            for r in held
            if r["kind"] == "subscription" and r["status"] in _RENEWING
        ]
        if not targets:
            raise ActionRejected(
                "the customer has no renewing subscription to extend", code="nothing_to_extend"
            )
        await self._check_extension(targets, days)
        request = {"days": days, "reason": reason}
        request_id = str(uuid.uuid4())
        answered = []
        for store, target in targets:
            acting = self._acting_for(store)
            outcome = await acting.extend(target, days=days, reason=reason, request_id=request_id)
            kept = await self._kept(
                customer=customer,
                store=store,
                target=target,
                action="extend",
                request=request,
                outcome=outcome,
                actor=actor,
            )
            answered.append(kept)
        await self._note(customer, "extend", actor, request, answered)
        return answered

    async def revoke(
        self, app_user_id: str, purchase_id: str, refund: str, actor: Actor
    ) -> list[dict[str, Any]]:
        """Revoke one purchase of the customer with a refund; what the store answered."""
        if refund not in REFUNDS:
            raise ActionRejected(
                f"refund must be one of {', '.join(REFUNDS)}", code="invalid_refund"
            )
        customer, held = await self._held(app_user_id)
        found = [r for r in held if r["purchase_id"] == purchase_id]
        if not found:
            raise ActionRejected(
                "the customer holds no purchase with this id", code="purchase_not_found"
            )
        row = found[0]
        store, target = Store(row["store"]), _target(row)
        if store is Store.APP_STORE:
            raise ActionRejected(
                "the App Store cannot revoke on the developer's request; only Apple refunds",
                code="store_cannot_revoke",
            )
        allowed = ("full", "prorated") if target.subscription else ("full",)
        if refund not in allowed:
            what = "a subscription" if target.subscription else "a one-time product"
            raise ActionRejected(
                f"Google Play revokes {what} only with a refund: {' or '.join(allowed)}",
                code="refund_required",
            )
        outcome = await self._acting_for(store).revoke(target, refund=refund)
        request = {"purchase": purchase_id, "refund": refund}
        kept = await self._kept(
            customer=customer,
            store=store,
            target=target,
            action="revoke",
            request=request,
            outcome=outcome,
            actor=actor,
        )
        answered = [kept]
        await self._note(customer, "revoke", actor, request, answered)
        return answered

    # --- pieces ----------------------------------------------------------------------------

    async def _held(self, app_user_id: str) -> tuple[str, list[asyncpg.Record]]:
        async def read(conn: asyncpg.Connection) -> tuple[str, list[asyncpg.Record]]:
            customer = await replay_db.customer_of(conn, app_user_id)
            return customer, await db.held(conn, customer)

        return await run(self._pool, read)

    def _acting_for(self, store: Store) -> StoreActing:
        acting = self._acting.get(store)
        if acting is None:
            raise ActionRejected(
                f"{store.value} actions need its store API credentials",
                code="store_actions_not_configured",
            )
        return acting

    async def _check_extension(self, targets: list[tuple[Store, ActionTarget]], days: int) -> None:
        stores = {store for store, _ in targets}
        for store in stores:
            self._acting_for(store)
        limit = APPLE_MAX_DAYS if Store.APP_STORE in stores else PLAY_MAX_DAYS
        if not 1 <= days <= limit:
            raise ActionRejected(
                f"days must be from 1 to {limit}"
                + (" (Apple extends by at most 90 days)" if limit == APPLE_MAX_DAYS else ""),
                code="extension_out_of_range",
            )
        since = self._clock() - timedelta(days=365)
        apple = [t.purchase_id for store, t in targets if store is Store.APP_STORE]
        counts = await run(
            self._pool,
            lambda conn: db.extensions_since(conn, Store.APP_STORE, apple, since),
        )
        for purchase_id, done in counts.items():
            if done >= APPLE_PER_YEAR:
                raise ActionRejected(
                    "Apple extends a subscription at most twice in 365 days; this customer's "
                    f"subscription {purchase_id} was extended {done} times",
                    code="extension_limit_reached",
                )

    async def _kept(
        self,
        *,
        customer: str,
        store: Store,
        target: ActionTarget,
        action: str,
        request: dict[str, Any],
        outcome: ActionOutcome,
        actor: Actor,
    ) -> dict[str, Any]:
        """Keep the store's answer, then re-read the purchase so that what the store now
        says (and only that) reaches the customer's state."""
        now = self._clock()
        await run(
            self._pool,
            lambda conn: db.record(
                conn,
                app_user_id=customer,
                store=store,
                purchase_id=target.purchase_id,
                action=action,
                request=request,
                status=outcome.status,
                detail=outcome.detail,
                answer=outcome.answer,
                actor=actor.name,
                at=now,
            ),
        )
        if outcome.status == "requested":
            await self._reread(store, target)
        log.info(
            "store_action",
            action=action,
            store=store.value,
            status=outcome.status,
            actor=actor.name,
        )
        return {
            "store": store.value,
            "purchase": target.purchase_id,
            "status": outcome.status,
            "detail": outcome.detail,
        }

    async def _reread(self, store: Store, target: ActionTarget) -> None:
        adapter = self._rereading.get(store)
        if adapter is None:
            return
        try:
            request, resolution = await self._messages.refreshed(
                adapter, target.purchase_id, target.environment, target.app
            )
            await self._messages.statement(store, request, resolution, self._clock())
        except ReceiptError as exc:  # the store's notification will tell us later
            log.info("store_action_reread_failed", store=store.value, error=type(exc).__name__)

    async def _note(
        self,
        customer: str,
        action: str,
        actor: Actor,
        request: dict[str, Any],
        answered: list[dict[str, Any]],
    ) -> None:
        counts = {
            s: sum(a["status"] == s for a in answered) for s in ("requested", "refused", "failed")
        }
        await self._operations.note(customer, action, actor, request | counts)


def _target(row: asyncpg.Record) -> ActionTarget:
    return ActionTarget(
        purchase_id=row["purchase_id"],
        product_id=row["product_id"],
        subscription=row["kind"] == "subscription",
        environment=row["environment"],
        app=row["app"],
    )
