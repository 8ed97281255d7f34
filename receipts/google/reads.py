"""Reads of the Play Developer API turned into events, and the acknowledgements they need.

Used by the adapter for pushes and submissions alike: the purchase is always re-read from the
Play Developer API (the notification or the app is never trusted for state), translated, and
checked for a pending acknowledgement.

The adapter reads through a `RecordingPlay`: every document Play answered (or the failure the
adapter acts on) is recorded raw for the journal, and in replay served from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from entitlements.model import StoreEvent
from receipts.errors import PurchaseNotFound, StoreUnavailable
from receipts.google.translate import (
    is_gone,
    needs_acknowledgement,
    product_events,
    subscription_events,
)
from receipts.recording import Failures, ReadRecorder
from storage.play_acknowledgements import AckRequest

# What the adapter acts on: a token Play does not know (404 → products.get, or `rejected`),
# and an outage during a voided purchase (the notification's revocation still applies).
_RECORDED_FAILURES: Failures = {
    "purchase_not_found": PurchaseNotFound,
    "store_unavailable": StoreUnavailable,
}


class PlayReader(Protocol):
    """The reads of the Play Developer API the adapter makes (`receipts.google.play`)."""

    async def get_subscription(self, package: str, token: str) -> dict[str, Any]:
        """purchases.subscriptionsv2.get: the subscription of `token` (SubscriptionPurchaseV2)."""
        ...

    async def get_product(self, package: str, product_id: str, token: str) -> dict[str, Any]:
        """purchases.products.get: the one-time purchase of `token` (ProductPurchase, v1)."""
        ...


class PlayApi(PlayReader, Protocol):
    """The Play Developer API as the adapter uses it: reads, and the voided purchases list
    (reconciliation; not recorded: each item is journaled itself)."""

    async def list_voided_purchases(
        self,
        package: str,
        *,
        start: datetime,
        end: datetime,
        page_token: str | None = None,
        max_results: int = 1000,
    ) -> dict[str, Any]:
        """purchases.voidedpurchases.list: one page of the purchases voided between `start`
        and `end` (or the page after `page_token`)."""
        ...


class RecordingPlay:
    """`play`'s reads through `recorder` (one resolve or submit)."""

    def __init__(self, play: PlayReader, recorder: ReadRecorder) -> None:
        self._play = play
        self._recorder = recorder

    async def get_subscription(self, package: str, token: str) -> dict[str, Any]:
        """`play.get_subscription`, recorded as `play.subscriptionsv2.get`."""
        return await self._recorder.read(
            "play.subscriptionsv2.get",
            {"package": package, "token": token},
            lambda: self._play.get_subscription(package, token),
            _RECORDED_FAILURES,
        )

    async def get_product(self, package: str, product_id: str, token: str) -> dict[str, Any]:
        """`play.get_product`, recorded as `play.products.get`."""
        return await self._recorder.read(
            "play.products.get",
            {"package": package, "product": product_id, "token": token},
            lambda: self._play.get_product(package, product_id, token),
            _RECORDED_FAILURES,
        )


@dataclass(frozen=True, slots=True)
class PlayRead:
    """Events from one Play API read, and the acknowledgements the purchase still needs."""

    events: list[StoreEvent]
    acks: list[AckRequest] = field(default_factory=list)
    line_item_products: frozenset[str] = frozenset()


async def read_subscription(
    play: PlayReader,
    package: str,
    token: str,
    now: datetime,
    *,
    notification_type: int | None = None,
    event_time: datetime | None = None,
    revoked_at: datetime | None = None,
) -> PlayRead:
    """subscriptionsv2.get → events (one per line item) and the pending acknowledgement.

    `now` is this host's read time (it orders Play reads); `event_time` is the Google time
    of the notification that asked for the read, `revoked_at` a revocation it stated."""
    purchase = await play.get_subscription(package, token)
    events = subscription_events(
        notification_type,
        token,
        purchase,
        package,
        now,
        event_time=event_time,
        revoked_at=revoked_at,
    )
    products = _line_item_products(purchase)
    acks = []
    if needs_acknowledgement(purchase) and products:
        # acknowledge is still v1: subscriptionId is a line item's productId
        first = str(purchase["lineItems"][0].get("productId") or "")
        acks.append(AckRequest("subscription", package, first or min(products), token))
    return PlayRead(events, acks, products)


async def read_product(
    play: PlayReader,
    package: str,
    product_id: str,
    token: str,
    now: datetime,
    *,
    consumable_products: frozenset[str],
    notification_type: int | None = None,
) -> PlayRead:
    """products.get → the one-time purchase's event and its pending acknowledgement."""
    purchase = await play.get_product(package, product_id, token)
    events = product_events(
        notification_type,
        token,
        purchase,
        product_id,
        now,
        consumable_products=consumable_products,
        package=package,
    )
    acks = []
    if needs_acknowledgement(purchase):
        acks.append(AckRequest("product", package, product_id, token))
    return PlayRead(events, acks, frozenset({product_id}))


async def read_submitted(
    play: PlayReader,
    package: str,
    product_id: str,
    token: str,
    now: datetime,
    *,
    consumable_products: frozenset[str],
    product_type: str | None,
) -> PlayRead:
    """The purchase an app submitted, subscription or one-time product.

    With `product_type` ("subscription" / "one_time") the app says which; without it a
    configured consumable is read as a product, anything else with subscriptionsv2 first
    and products.get when Play does not know it as a subscription (404, or 410 which might
    be either). One extra round trip for one-time products submitted without a type.
    """
    consumables = consumable_products
    if product_type == "one_time" or (product_type is None and product_id in consumables):
        return await read_product(
            play, package, product_id, token, now, consumable_products=consumables
        )
    try:
        read = await read_subscription(play, package, token, now)
    except PurchaseNotFound:
        if product_type == "subscription":
            raise
        return await read_product(
            play, package, product_id, token, now, consumable_products=consumables
        )
    if read.line_item_products:
        if product_id not in read.line_item_products:
            raise PurchaseNotFound("The purchase token is not for this product.")
        return read
    if product_type is None and _gone(read):
        try:
            return await read_product(
                play, package, product_id, token, now, consumable_products=consumables
            )
        except PurchaseNotFound:
            pass
    return read


def _gone(read: PlayRead) -> bool:
    return any(e.details.get("gone") for e in read.events)


def _line_item_products(purchase: dict[str, Any]) -> frozenset[str]:
    if is_gone(purchase):
        return frozenset()
    items = purchase.get("lineItems") or []
    return frozenset(
        str(i["productId"]) for i in items if isinstance(i, dict) and i.get("productId")
    )
