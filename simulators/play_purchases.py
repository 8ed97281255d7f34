"""Builders of realistic Play API bodies: SubscriptionPurchaseV2 per state, ProductPurchase.

Shapes follow the androidpublisher v3 discovery document bundled with
google-api-python-client. Used by the fake Play API, the unit tests and the simulator.
Every time in a body is derived from the caller's `now` (or `purchase_time`): tests pass
their injected clock, never the wall clock, so the service's clock and the store's agree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SUBSCRIPTION_STATES = (
    "active",
    "canceled",
    "grace",
    "on_hold",
    "paused",
    "expired",
    "pending",
    "pending_canceled",
)
_STATE_NAMES = {
    "active": "SUBSCRIPTION_STATE_ACTIVE",
    "canceled": "SUBSCRIPTION_STATE_CANCELED",
    "grace": "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
    "on_hold": "SUBSCRIPTION_STATE_ON_HOLD",
    "paused": "SUBSCRIPTION_STATE_PAUSED",
    "expired": "SUBSCRIPTION_STATE_EXPIRED",
    "pending": "SUBSCRIPTION_STATE_PENDING",
    "pending_canceled": "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED",
}
_OFFER_PHASES: dict[str, dict[str, dict[str, Any]]] = {
    "base": {"basePrice": {}},
    "trial": {"freeTrial": {}},
    "intro": {"introductoryPrice": {}},
    "proration": {"prorationPeriod": {}},
}


def rfc3339(value: datetime) -> str:
    """Google's time format: UTC with milliseconds and a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _money(units: str) -> dict[str, Any]:
    return {"currencyCode": "EUR", "units": units, "nanos": 990000000}


def subscription_purchase(
    state: str,
    *,
    now: datetime,
    product_id: str = "premium_monthly",
    start: datetime | None = None,
    expiry: datetime | None = None,
    order_id: str | None = "GPA.3300-1111-2222-33333",
    auto_renew: bool | None = None,
    offer_phase: str | None = "base",
    offer_id: str | None = None,
    offer_tags: list[str] | None = None,
    test_purchase: bool = False,
    linked_token: str | None = None,
    user: str | None = None,
    acknowledged: bool = True,
    prepaid: bool = False,
    price_change_state: str | None = None,
    extra_line_items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A SubscriptionPurchaseV2 in one of SUBSCRIPTION_STATES.

    Times are relative to `now` (required: the caller's clock). Defaults make sense per
    state: an active subscription started a day ago and expires in 29 days; grace ends in
    3 days; on hold and expired ended yesterday; pending has no startTime nor order.
    `offer_phase` is one of base, trial, intro, proration or None.
    """
    if state not in _STATE_NAMES:
        raise ValueError(f"unknown subscription state {state!r}")
    pending = state in {"pending", "pending_canceled"}
    if expiry is None:
        expiry = {
            "grace": now + timedelta(days=3),
            "on_hold": now - timedelta(days=1),
            "expired": now - timedelta(days=1),
            "paused": now - timedelta(hours=1),
        }.get(state, now + timedelta(days=29))
    start = start or (now - timedelta(days=1))
    if auto_renew is None:
        auto_renew = state not in {"canceled", "expired", "pending_canceled"}
    item: dict[str, Any] = {"productId": product_id, "expiryTime": rfc3339(expiry)}
    if prepaid:
        item["prepaidPlan"] = {"allowExtendAfterTime": rfc3339(expiry - timedelta(days=3))}
    else:
        plan: dict[str, Any] = {"autoRenewEnabled": auto_renew, "recurringPrice": _money("4")}
        if price_change_state is not None:
            plan["priceChangeDetails"] = {
                "newPrice": _money("5"),
                "priceChangeMode": "PRICE_INCREASE",
                "priceChangeState": price_change_state,
                "expectedNewPriceChargeTime": rfc3339(expiry),
            }
        item["autoRenewingPlan"] = plan
    offer: dict[str, Any] = {"basePlanId": "monthly"}
    if offer_id is not None:
        offer["offerId"] = offer_id
    if offer_tags is not None:
        offer["offerTags"] = offer_tags
    item["offerDetails"] = offer
    if offer_phase is not None:
        item["offerPhase"] = _OFFER_PHASES[offer_phase]
    if order_id is not None and not pending:
        item["latestSuccessfulOrderId"] = order_id
    body: dict[str, Any] = {
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": "DE",
        "subscriptionState": _STATE_NAMES[state],
        "acknowledgementState": (
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
            if acknowledged
            else "ACKNOWLEDGEMENT_STATE_PENDING"
        ),
        "lineItems": [item, *(extra_line_items or [])],
        "etag": f"etag-{state}",
    }
    if not pending:
        body["startTime"] = rfc3339(start)
    if test_purchase:
        body["testPurchase"] = {}
    if linked_token is not None:
        body["linkedPurchaseToken"] = linked_token
    if user is not None:
        body["externalAccountIdentifiers"] = {
            "obfuscatedExternalAccountId": user,
            "obfuscatedExternalProfileId": f"profile-{user}",
        }
    if state == "canceled":
        body["canceledStateContext"] = {
            "userInitiatedCancellation": {
                "cancelSurveyResult": {"reason": "CANCEL_SURVEY_REASON_NOT_ENOUGH_USAGE"},
                "cancelTime": rfc3339(now),
            }
        }
    elif state == "paused":
        body["pausedStateContext"] = {"autoResumeTime": rfc3339(now + timedelta(days=30))}
    elif state == "grace":
        body["inGracePeriodStateContext"] = {"renewalDeclined": {"pendingOrderId": "GPA.x..1"}}
    elif state == "on_hold":
        body["onHoldStateContext"] = {"renewalDeclined": {}}
    # Personal data the translation must not copy into event details.
    body["subscribeWithGoogleInfo"] = {"emailAddress": "person@example.com", "givenName": "Pat"}
    return body


def product_purchase(
    product_id: str = "lifetime_unlock",
    *,
    purchase_time: datetime,
    purchase_state: int = 0,
    order_id: str = "GPA.3300-4444-5555-66666",
    test_purchase: bool = False,
    user: str | None = None,
    acknowledged: bool = False,
    consumed: bool = False,
    quantity: int | None = None,
) -> dict[str, Any]:
    """A ProductPurchase (v1) bought at `purchase_time` (required: the caller's clock);
    purchaseState 0 purchased, 1 cancelled, 2 pending."""
    body: dict[str, Any] = {
        "kind": "androidpublisher#productPurchase",
        "purchaseTimeMillis": str(int(purchase_time.timestamp() * 1000)),
        "purchaseState": purchase_state,
        "consumptionState": int(consumed),
        "developerPayload": "",
        "orderId": order_id,
        "acknowledgementState": int(acknowledged),
        "productId": product_id,
        "regionCode": "DE",
    }
    if test_purchase:
        body["purchaseType"] = 0
    if user is not None:
        body["obfuscatedExternalAccountId"] = user
    if quantity is not None:
        body["quantity"] = quantity
    return body


def voided_purchase(
    token: str,
    order_id: str,
    voided_at: datetime,
    *,
    purchased_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A VoidedPurchase as `purchases.voidedpurchases.list` gives it (times in ms strings;
    `extra` adds fields, e.g. `voidedQuantity` for a quantity-based partial refund)."""
    bought = purchased_at if purchased_at is not None else voided_at - timedelta(days=3)
    return {
        "kind": "androidpublisher#voidedPurchase",
        "purchaseToken": token,
        "orderId": order_id,
        "purchaseTimeMillis": str(int(bought.timestamp() * 1000)),
        "voidedTimeMillis": str(int(voided_at.timestamp() * 1000)),
        "voidedSource": 0,
        "voidedReason": 1,
        **extra,
    }
