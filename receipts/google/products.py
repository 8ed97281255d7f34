"""Google Play one-time products (ProductPurchase v1) and voided purchases as StoreEvents.

Pure functions, no I/O; re-exported by `receipts.google.translate`. Voided purchases come
from a notification (`voided_event`) or from the Voided Purchases API (`voided_purchase_event`,
for `receiptd reconcile google`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from entitlements.model import (
    EventKind,
    PurchaseKind,
    Status,
    Store,
    StoreEvent,
    TransactionFacts,
)
from receipts.google.notifications import (
    ONE_TIME_PRODUCT_CANCELED,
    REFUND_TYPE_PARTIAL,
    Category,
    Notification,
    parse_millis,
)

_PURCHASE_TYPES = {0: "test", 1: "promo", 2: "rewarded"}


def product_events(
    notification_type: int | None,
    token: str,
    purchase: Mapping[str, Any],
    product_id: str,
    now: datetime,
    *,
    consumable_products: Collection[str] = frozenset(),
    package: str | None = None,
) -> list[StoreEvent]:
    """Translate one products.get (ProductPurchase v1) read, made at `now` (this host's
    clock: it only orders reads), into StoreEvents.

    purchaseState 0 → ACTIVE (lifetime for non-consumables), 2 → PENDING, 1 (cancelled) →
    PENDING after ONE_TIME_PRODUCT_CANCELED (a pending purchase that was never paid), else
    REVOKED (a paid purchase that was cancelled or refunded). Products listed in
    `consumable_products` are CONSUMABLE and never hold an entitlement open.
    products.get says no time of revocation: `revoked_at` comes from the voided-purchase
    notification (`voided_event`), never from the moment of the read.
    """
    state = purchase.get("purchaseState", 0)
    if state == 2:
        status = Status.PENDING
    elif state == 1:
        never_paid = notification_type == ONE_TIME_PRODUCT_CANCELED
        status = Status.PENDING if never_paid else Status.REVOKED
    else:
        status = Status.ACTIVE
    kind = {1: EventKind.PURCHASED, 2: EventKind.INFORMATIONAL}.get(
        notification_type or 0, EventKind.STATE_REFRESHED
    )
    if status is Status.REVOKED:
        kind = EventKind.REVOKED
    purchased_at = parse_millis(purchase.get("purchaseTimeMillis"))
    order_id = purchase.get("orderId")
    consumable = product_id in consumable_products
    purchase_kind = PurchaseKind.CONSUMABLE if consumable else PurchaseKind.NON_CONSUMABLE
    transaction = TransactionFacts(
        transaction_id=order_id if isinstance(order_id, str) and order_id else token,
        product_id=product_id,
        kind=purchase_kind,
        purchased_at=purchased_at,
        signed_at=now,
        expires_at=None,
        original_purchased_at=purchased_at,
        revocation_reason="cancelled" if status is Status.REVOKED else None,
    )
    user = purchase.get("obfuscatedExternalAccountId")
    details = {
        "package_name": purchase.get("packageName"),
        "order_id": order_id,
        "purchase_state": state,
        "consumption_state": purchase.get("consumptionState"),
        "acknowledgement_state": purchase.get("acknowledgementState"),
        "purchase_type": _PURCHASE_TYPES.get(purchase.get("purchaseType", -1)),
        "quantity": purchase.get("quantity", 1),
        "refundable_quantity": purchase.get("refundableQuantity"),
        "region_code": purchase.get("regionCode"),
        "notification_type": notification_type,
    }
    return [
        StoreEvent(
            store=Store.PLAY_STORE,
            purchase_id=token,
            kind=kind,
            occurred_at=now,
            is_sandbox=purchase.get("purchaseType") == 0,
            transaction=transaction,
            status=status,
            app_user_id=user if isinstance(user, str) and user else None,
            details={k: v for k, v in details.items() if v is not None},
            app=package or details["package_name"],
        )
    ]


def voided_event(notification: Notification, now: datetime) -> StoreEvent | None:
    """The revocation stated by a voidedPurchaseNotification itself (contract: at once), at
    the notification's eventTimeMillis; `now` (this host's clock) only orders the statement.

    A quantity-based partial refund does not revoke (the remaining quantity stays paid;
    Google sends the last remaining quantity as a full refund) and yields None, as does a
    notification without a time (the webhook supplies the push's publishTime). The caller
    may also re-read the purchase and pass `revoked_at` to `subscription_events`.
    """
    if notification.category is not Category.VOIDED or notification.purchase_token is None:
        return None
    if notification.refund_type == REFUND_TYPE_PARTIAL or notification.event_time is None:
        return None
    return StoreEvent(
        store=Store.PLAY_STORE,
        purchase_id=notification.purchase_token,
        kind=EventKind.REFUNDED,
        occurred_at=now,
        is_sandbox=False,
        revoked_at=notification.event_time,
        app=notification.package_name,
        details={
            "package_name": notification.package_name,
            "order_id": notification.order_id,
            "voided_product_type": notification.voided_product_type,
            "refund_type": notification.refund_type,
        },
    )


def voided_purchase_event(
    item: Mapping[str, Any], package: str, now: datetime
) -> StoreEvent | None:
    """The revocation stated by one `voidedpurchases.list` item (a VoidedPurchase), at its
    `voidedTimeMillis` (the store's time); `now` (this host's clock) only orders it.

    As for the notification (`voided_event`): a quantity-based partial refund (an item with
    `voidedQuantity`, listed only when asked for) does not revoke, and an item without a
    token or a time states nothing; both yield None.
    """
    token = item.get("purchaseToken")
    voided_at = parse_millis(item.get("voidedTimeMillis"))
    if not isinstance(token, str) or not token or voided_at is None:
        return None
    if item.get("voidedQuantity") is not None:
        return None
    details = {
        "package_name": package,
        "order_id": item.get("orderId"),
        "voided_source": item.get("voidedSource"),
        "voided_reason": item.get("voidedReason"),
    }
    return StoreEvent(
        store=Store.PLAY_STORE,
        purchase_id=token,
        kind=EventKind.REFUNDED,
        occurred_at=now,
        is_sandbox=False,
        revoked_at=voided_at,
        app=package,
        details={k: v for k, v in details.items() if v is not None},
    )
