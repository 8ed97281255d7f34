"""Google Play purchases (SubscriptionPurchaseV2, ProductPurchase v1) translated into StoreEvents.

Pure functions, no I/O, no clock. Two clocks, never mixed (see `StoreEvent`): `now` is the
time this host read the Play Developer API; it is the statement clock (`occurred_at`,
`signed_at`) that orders Play reads among themselves (the API, not the notification, is the
truth, and its answers carry no time of their own). Google's own times are the facts:
`startTime`, `expiryTime`, `cancelTime`, and `event_time`, the eventTimeMillis of the
notification that asked for the read (None for a submission or a reconciliation read).
Push parsing and classification live in `receipts.google.notifications` and are
re-exported here.

State-mapping decisions (see also the unit tests' table):
- CANCELED keeps access to the end of the paid period: status ACTIVE, will_renew False.
- IN_GRACE_PERIOD: GRACE_PERIOD, in billing retry, grace ends at the line item's expiryTime.
- PENDING and PENDING_PURCHASE_CANCELED both map to PENDING: the purchase was never paid,
  never grants and is never shown as an entitlement; a cancelled pending purchase stays
  that way. Neither states `supersedes` (a pending upgrade does not end the old token).
- A subscription line item is one transaction keyed by the purchase id (see
  `_subscription_transaction`); `latestSuccessfulOrderId` is kept in details["order_id"].
- An HTTP 410 read (`gone_subscription()`) is EXPIRED with no transaction facts.
- SUBSCRIPTION_REVOKED and full voided refunds revoke at once (sticky), whatever the API says,
  at the notification's eventTimeMillis.
- Detection times are Google's (contract §3). A read shows the state *now*: a late or
  replayed notification reads the newest document, so the read cannot say when a condition
  began. The flag statements therefore come from what Google stated at a time of its own:
  a user cancellation's `cancelTime`, and the notification's type at its eventTimeMillis
  (`_FLAG_CODES`: CANCELED / REVOKED / EXPIRED turn auto-renew off, PURCHASED / RENEWED /
  RECOVERED / RESTARTED on; IN_GRACE_PERIOD / ON_HOLD report a billing issue, RENEWED /
  RECOVERED / PURCHASED its end). The state itself always comes from the read.
- A purchase that was never paid states no renewal intent (nothing was turned off) and has
  no purchase time until Google gives a `startTime`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    PeriodType,
    Price,
    PurchaseKind,
    RenewalFacts,
    Status,
    Store,
    StoreEvent,
    TransactionFacts,
    decimal_text,
)
from receipts.google.notifications import (
    SUBSCRIPTION_NOTIFICATION_NAMES,
    SUBSCRIPTION_REVOKED,
    Category,
    Notification,
    PushMessage,
    classify,
    parse_push,
    parse_rfc3339,
)
from receipts.google.products import product_events, voided_event, voided_purchase_event

__all__ = [
    "Category",
    "Notification",
    "PushMessage",
    "classify",
    "gone_subscription",
    "is_gone",
    "needs_acknowledgement",
    "parse_push",
    "product_events",
    "subscription_events",
    "voided_event",
    "voided_purchase_event",
]

_GONE_KEY = "receiptdGone"
_STATE_PREFIX = "SUBSCRIPTION_STATE_"
_STATUS_BY_STATE: dict[str, Status] = {
    "ACTIVE": Status.ACTIVE,
    "CANCELED": Status.ACTIVE,  # auto-renew off, paid period not over: access to the end
    "IN_GRACE_PERIOD": Status.GRACE_PERIOD,
    "ON_HOLD": Status.ON_HOLD,
    "PAUSED": Status.PAUSED,
    "EXPIRED": Status.EXPIRED,
    "PENDING": Status.PENDING,
    "PENDING_PURCHASE_CANCELED": Status.PENDING,  # never paid, never grants
}
_NEVER_PAID = frozenset({"PENDING", "PENDING_PURCHASE_CANCELED"})
_KIND_BY_CODE: dict[int, EventKind] = {
    1: EventKind.BILLING_RECOVERED,
    2: EventKind.RENEWED,
    3: EventKind.RENEWAL_DISABLED,
    4: EventKind.PURCHASED,
    5: EventKind.ON_HOLD,
    6: EventKind.BILLING_FAILED,
    7: EventKind.RENEWAL_ENABLED,
    8: EventKind.PRICE_INCREASE,
    9: EventKind.RENEWAL_EXTENDED,
    10: EventKind.PAUSED,
    11: EventKind.INFORMATIONAL,
    12: EventKind.REVOKED,
    13: EventKind.EXPIRED,
    17: EventKind.PRODUCT_CHANGED,
    18: EventKind.RENEWAL_DISABLED,
    19: EventKind.PRICE_INCREASE,
    20: EventKind.INFORMATIONAL,
    22: EventKind.PRICE_INCREASE,
}
# notificationType → (flag, is_set) statements at the notification's eventTimeMillis
_FLAG_CODES: dict[int, tuple[tuple[Flag, bool], ...]] = {
    1: ((Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)),  # RECOVERED
    2: ((Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)),  # RENEWED
    3: ((Flag.UNSUBSCRIBE, True),),  # CANCELED
    4: ((Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)),  # PURCHASED
    5: ((Flag.BILLING_ISSUE, True),),  # ON_HOLD
    6: ((Flag.BILLING_ISSUE, True),),  # IN_GRACE_PERIOD
    7: ((Flag.UNSUBSCRIBE, False),),  # RESTARTED
    12: ((Flag.UNSUBSCRIBE, True),),  # REVOKED
    13: ((Flag.UNSUBSCRIBE, True),),  # EXPIRED
}
_PRICE_ACCEPTED = {"CONFIRMED": True, "APPLIED": True, "OUTSTANDING": False}
_CANCEL_REASONS = {
    "userInitiatedCancellation": "user_canceled",
    "systemInitiatedCancellation": "system_canceled",
    "developerInitiatedCancellation": "developer_canceled",
    "replacementCancellation": "replaced",
}


def gone_subscription() -> dict[str, Any]:
    """The SubscriptionPurchaseV2 stand-in for an HTTP 410 (token expired long ago)."""
    return {"subscriptionState": _STATE_PREFIX + "EXPIRED", "lineItems": [], _GONE_KEY: True}


def is_gone(purchase: Mapping[str, Any]) -> bool:
    """True for the stand-in returned by `gone_subscription()`."""
    return purchase.get(_GONE_KEY) is True


def needs_acknowledgement(purchase: Mapping[str, Any]) -> bool:
    """True when a paid subscription or one-time purchase is not acknowledged yet.

    Works for SubscriptionPurchaseV2 (enum strings) and ProductPurchase v1 (0/1). Pending
    purchases cannot be acknowledged yet: the 3-day clock starts when they are paid.
    """
    if is_gone(purchase):
        return False
    state = purchase.get("subscriptionState")
    if isinstance(state, str):
        if state.removeprefix(_STATE_PREFIX) in (_NEVER_PAID | {"EXPIRED"}):
            return False
        return purchase.get("acknowledgementState") != "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
    if "purchaseState" in purchase:
        return purchase.get("purchaseState") == 0 and purchase.get("acknowledgementState") != 1
    return False


def subscription_events(
    notification_type: int | None,
    token: str,
    purchase: Mapping[str, Any],
    package: str,
    now: datetime,
    *,
    event_time: datetime | None = None,
    revoked_at: datetime | None = None,
) -> list[StoreEvent]:
    """Translate one subscriptionsv2.get read (made at `now`) into StoreEvents.

    One event per line item: the first is keyed by the purchase token; further items
    (add-ons of a bundle) are keyed `token|productId`. `notification_type` is the RTDN code
    and `event_time` its eventTimeMillis (both None for a submission or a reconciliation
    read). `revoked_at` states a revocation (a voided purchase); SUBSCRIPTION_REVOKED (12)
    revokes at `event_time`.
    """
    if notification_type == SUBSCRIPTION_REVOKED and revoked_at is None:
        revoked_at = event_time
    raw_state = str(purchase.get("subscriptionState", "")).removeprefix(_STATE_PREFIX)
    status = _STATUS_BY_STATE.get(raw_state)
    kind = _KIND_BY_CODE.get(notification_type or 0, EventKind.STATE_REFRESHED)
    never_paid = raw_state in _NEVER_PAID
    linked = purchase.get("linkedPurchaseToken")
    supersedes = linked if isinstance(linked, str) and linked and not never_paid else None
    external = purchase.get("externalAccountIdentifiers")
    user = external.get("obfuscatedExternalAccountId") if isinstance(external, dict) else None
    details = _subscription_details(purchase, package, notification_type, raw_state)
    common: dict[str, Any] = {
        "store": Store.PLAY_STORE,
        "kind": kind,
        "occurred_at": now,
        "is_sandbox": "testPurchase" in purchase,
        "status": status,
        "revoked_at": revoked_at,
        "flags": _flags(notification_type, event_time, purchase, never_paid),
        "app_user_id": user if isinstance(user, str) and user else None,
        "app": package,
    }
    items = [i for i in purchase.get("lineItems") or [] if isinstance(i, dict)]
    if not items:
        return [StoreEvent(purchase_id=token, supersedes=supersedes, details=details, **common)]
    # The item that expires last is the base plan; the others are add-ons. Items without an
    # expiry (pending) sort after those with one: Google's times are compared only with each
    # other, never with `now`.
    items.sort(key=_expiry_order, reverse=True)
    events = []
    for index, item in enumerate(items):
        product_id = str(item.get("productId") or "")
        purchase_id = token if index == 0 else f"{token}|{product_id}"
        item_details = dict(details) | _line_item_details(item)
        if index:
            item_details["add_on_of"] = "line item of the same purchase token"
        events.append(
            StoreEvent(
                purchase_id=purchase_id,
                transaction=_subscription_transaction(purchase, item, purchase_id, product_id, now),
                renewal=None if never_paid else _renewal(purchase, item, raw_state, now),
                supersedes=supersedes if index == 0 else None,
                details=item_details,
                **common,
            )
        )
    return events


# --- pieces ----------------------------------------------------------------------------


def _subscription_transaction(
    purchase: Mapping[str, Any],
    item: Mapping[str, Any],
    purchase_id: str,
    product_id: str,
    now: datetime,
) -> TransactionFacts:
    """One transaction per line item, keyed by the purchase id, not by the order id.

    subscriptionsv2 gives the current state, not an order history, and every order of a
    token shares its startTime; keyed per order, an older order (say a trial whose expiry
    was later than a grace period's) could sort as "latest". Keyed per line item, the
    newest read always wins. The order id is kept in the event details.
    """
    started = parse_rfc3339(purchase.get("startTime"))
    order = item.get("latestSuccessfulOrderId")
    return TransactionFacts(
        transaction_id=purchase_id,
        product_id=product_id,
        kind=PurchaseKind.SUBSCRIPTION,
        purchased_at=started,  # None while pending: Google gives no startTime yet
        signed_at=now,
        expires_at=parse_rfc3339(item.get("expiryTime")),
        original_purchased_at=started,
        period_type=period_type(item),
        price=line_item_price(item),
        order_id=order if isinstance(order, str) and order else None,
    )


def line_item_price(item: Mapping[str, Any]) -> Price | None:
    """A line item's `autoRenewingPlan.recurringPrice` (Money: units + nanos) as an exact
    decimal, "0" during a free-trial phase; None where Play states none (prepaid plans)."""
    money = _object(_object(item.get("autoRenewingPlan")).get("recurringPrice"))
    currency = money.get("currencyCode")
    if not isinstance(currency, str) or not currency:
        return None
    if "freeTrial" in _object(item.get("offerPhase")):
        return Price("0", currency)
    try:
        units = Decimal(int(money.get("units") or 0))
        nanos = Decimal(int(money.get("nanos") or 0)).scaleb(-9)
    except (TypeError, ValueError):
        return None
    return Price(decimal_text(units + nanos), currency)


def _renewal(
    purchase: Mapping[str, Any], item: Mapping[str, Any], raw_state: str, now: datetime
) -> RenewalFacts:
    plan = item.get("autoRenewingPlan")
    will_renew = isinstance(plan, dict) and plan.get("autoRenewEnabled") is True
    if raw_state in {"CANCELED", "EXPIRED", *_NEVER_PAID}:
        will_renew = False
    grace_until = parse_rfc3339(item.get("expiryTime")) if raw_state == "IN_GRACE_PERIOD" else None
    price = plan.get("priceChangeDetails") if isinstance(plan, dict) else None
    accepted = None
    if isinstance(price, dict):
        accepted = _PRICE_ACCEPTED.get(str(price.get("priceChangeState")))
    return RenewalFacts(
        signed_at=now,
        will_renew=will_renew,
        auto_renew_product_id=_deferred_product(item),
        in_billing_retry=raw_state in {"IN_GRACE_PERIOD", "ON_HOLD"},
        grace_period_expires_at=grace_until,
        price_increase_accepted=accepted,
        expiration_reason=_cancel_reason(purchase),
    )


def period_type(item: Mapping[str, Any]) -> PeriodType:
    """Trial / intro / normal from a line item's offerPhase, else its offer id and tags."""
    phase = item.get("offerPhase")
    if isinstance(phase, dict) and phase:
        if "freeTrial" in phase:
            return PeriodType.TRIAL
        if "introductoryPrice" in phase:
            return PeriodType.INTRO
        return PeriodType.NORMAL
    offer = item.get("offerDetails")
    if not isinstance(offer, dict) or not offer.get("offerId"):
        return PeriodType.NORMAL  # no offer: the base plan's own price
    words = " ".join(str(w) for w in [offer.get("offerId"), *(offer.get("offerTags") or [])])
    words = words.lower()
    if "trial" in words:
        return PeriodType.TRIAL
    if "intro" in words:
        return PeriodType.INTRO
    return PeriodType.NORMAL


def _deferred_product(item: Mapping[str, Any]) -> str | None:
    deferred = item.get("deferredItemReplacement")
    if isinstance(deferred, dict) and isinstance(deferred.get("productId"), str):
        return str(deferred["productId"])
    return None


def _expiry_order(item: Mapping[str, Any]) -> tuple[bool, datetime]:
    expiry = parse_rfc3339(item.get("expiryTime"))
    return (expiry is not None, expiry or datetime.min.replace(tzinfo=UTC))


def _flags(
    code: int | None, event_time: datetime | None, purchase: Mapping[str, Any], never_paid: bool
) -> tuple[FlagStatement, ...]:
    """What Google stated at times of its own: the notification's type at its event time,
    and a user cancellation's cancelTime."""
    if never_paid:
        return ()
    flags = []
    if event_time is not None:
        for flag, is_set in _FLAG_CODES.get(code or 0, ()):
            flags.append(FlagStatement(flag, is_set, event_time))
    cancelled = _cancel_time(purchase)
    if cancelled is not None:
        flags.append(FlagStatement(Flag.UNSUBSCRIBE, True, cancelled))
    return tuple(flags)


def _cancel_time(purchase: Mapping[str, Any]) -> datetime | None:
    """When the user turned auto-renew off, as Google recorded it."""
    context = _object(purchase.get("canceledStateContext"))
    user = _object(context.get("userInitiatedCancellation"))
    return parse_rfc3339(user.get("cancelTime"))


def _cancel_reason(purchase: Mapping[str, Any]) -> str | None:
    context = purchase.get("canceledStateContext")
    if not isinstance(context, dict):
        return None
    for key, reason in _CANCEL_REASONS.items():
        if key in context:
            return reason
    return "canceled"


def _subscription_details(
    purchase: Mapping[str, Any], package: str, code: int | None, raw_state: str
) -> dict[str, Any]:
    """Inspection extras. Left out on purpose: subscribeWithGoogleInfo, externalAccount
    identifiers and outOfAppPurchaseContext (personal data, other tokens)."""
    details: dict[str, Any] = {
        "package_name": package,
        "subscription_state": raw_state or None,
        "acknowledgement_state": purchase.get("acknowledgementState"),
        "region_code": purchase.get("regionCode"),
        "notification_type": code,
        "notification_name": SUBSCRIPTION_NOTIFICATION_NAMES.get(code or 0),
        "test_purchase": "testPurchase" in purchase or None,
        "gone": is_gone(purchase) or None,
        "linked": "linkedPurchaseToken" in purchase or None,
        "cancel_reason": _cancel_reason(purchase),
    }
    paused = purchase.get("pausedStateContext")
    if isinstance(paused, dict):
        details["auto_resume_time"] = paused.get("autoResumeTime")
    return {k: v for k, v in details.items() if v is not None}


def _line_item_details(item: Mapping[str, Any]) -> dict[str, Any]:
    offer = _object(item.get("offerDetails"))
    plan = _object(item.get("autoRenewingPlan"))
    details: dict[str, Any] = {
        "order_id": item.get("latestSuccessfulOrderId"),
        "base_plan_id": offer.get("basePlanId"),
        "offer_id": offer.get("offerId"),
        "offer_tags": offer.get("offerTags"),
        "offer_phase": next(iter(item.get("offerPhase") or {}), None),
        "prepaid": "prepaidPlan" in item or None,
        "price_change": plan.get("priceChangeDetails"),
        "installments": plan.get("installmentDetails"),
        "price_step_up_consent": plan.get("priceStepUpConsentDetails"),
        "deferred_item_replacement": item.get("deferredItemReplacement"),
    }
    return {k: v for k, v in details.items() if v is not None}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
