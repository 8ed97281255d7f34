"""Support actions on Google Play purchases: a subscription's deferral (its next renewal
moves later: purchases.subscriptionsv2.defer, based on the etag of a fresh read), a
subscription's revocation with a full or prorated refund (subscriptionsv2.revoke), and a
one-time product's refund with revocation (orders.refund, by the order id of a fresh read).
Google's refusals (a stale etag, an expired subscription, an order too old) come back as
`refused` with Google's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from entitlements.model import Store
from receipts.errors import (
    PurchaseNotFound,
    StoreActionRefused,
    StoreRequestRejected,
    StoreUnavailable,
)
from receipts.port import ActionOutcome, ActionTarget

DAY_SECONDS = 86_400
MAX_DAYS = 365


class PlayActionsApi(Protocol):
    """What the actions ask of the Play Developer API (receipts.google.play.PlayClient)."""

    async def get_subscription(self, package: str, token: str) -> dict[str, Any]:
        """purchases.subscriptionsv2.get."""
        ...

    async def get_product(self, package: str, product_id: str, token: str) -> dict[str, Any]:
        """purchases.products.get."""
        ...

    async def defer_subscription(
        self, package: str, token: str, *, etag: str, defer_seconds: int
    ) -> dict[str, Any]:
        """purchases.subscriptionsv2.defer."""
        ...

    async def revoke_subscription(self, package: str, token: str, *, refund: str) -> None:
        """purchases.subscriptionsv2.revoke."""
        ...

    async def refund_order(self, package: str, order_id: str, *, revoke: bool) -> None:
        """orders.refund."""
        ...


@dataclass
class PlayActions:
    """Deferral, revocation and refunds on the Play Developer API (`play`)."""

    play: PlayActionsApi
    default_package: str
    store: Store = field(default=Store.PLAY_STORE)

    async def extend(
        self, target: ActionTarget, *, days: int, reason: str, request_id: str
    ) -> ActionOutcome:
        """Defer the subscription's renewal by `days` (Google keeps no reason)."""
        package = target.app or self.default_package
        try:
            current = await self.play.get_subscription(package, target.purchase_id)
            etag = current.get("etag")
            if not isinstance(etag, str) or not etag:
                return ActionOutcome("refused", "Google's read of the subscription has no etag")
            answer = await self.play.defer_subscription(
                package, target.purchase_id, etag=etag, defer_seconds=days * DAY_SECONDS
            )
        except (StoreActionRefused, PurchaseNotFound, StoreRequestRejected) as exc:
            return ActionOutcome("refused", exc.message, {"reason": _code(exc)})
        except StoreUnavailable as exc:
            return ActionOutcome("failed", exc.message)
        return ActionOutcome("requested", "Google deferred the renewal", answer)

    async def revoke(self, target: ActionTarget, *, refund: str) -> ActionOutcome:
        """Revoke a subscription with a `refund` ("full" or "prorated"), or refund a one-time
        product's order and revoke it ("full" only)."""
        package = target.app or self.default_package
        try:
            if target.subscription:
                await self.play.revoke_subscription(package, target.purchase_id, refund=refund)
                return ActionOutcome("requested", f"Google revoked it with a {refund} refund")
            product = await self.play.get_product(package, target.product_id, target.purchase_id)
            order = product.get("orderId")
            if not isinstance(order, str) or not order:
                return ActionOutcome("refused", "Google's read of the purchase has no order id")
            await self.play.refund_order(package, order, revoke=True)
        except (StoreActionRefused, PurchaseNotFound, StoreRequestRejected) as exc:
            return ActionOutcome("refused", exc.message, {"reason": _code(exc)})
        except StoreUnavailable as exc:
            return ActionOutcome("failed", exc.message)
        return ActionOutcome("requested", "Google refunded the order and revoked it", {})


def _code(exc: Exception) -> str | int | None:
    code: str | int | None = getattr(exc, "store_code", None)
    return code
