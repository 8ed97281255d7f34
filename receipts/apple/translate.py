"""Pure translation of verified Apple payloads into store-neutral `StoreEvent`s.

Apple's camelCase stops here. Purchases are keyed by `originalTransactionId`; a notification's
`occurred_at` is its signedDate (a bare transaction's: its own signedDate), so the state
machine can order statements. Every time here is Apple's own: the statement clock and the
store's times are the same clock. Auto-renew is seen off at the renewal info's signedDate,
a billing issue at the signedDate of the statement that shows it, a revocation at the
transaction's revocationDate. Notifications that carry no transaction (TEST, SUMMARY,
EXTERNAL_PURCHASE_TOKEN, RESCIND_CONSENT, …) produce no event.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    Ownership,
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
from receipts.apple.verifier import AppleNotification, VerifiedRenewalInfo, VerifiedTransaction
from receipts.errors import MalformedPayload

SANDBOX_ENVIRONMENTS = frozenset({"Sandbox", "Xcode", "LocalTesting"})

# (notificationType, subtype) → kind; (type, None) is the row for "any other / no subtype".
EVENT_KINDS: dict[tuple[str, str | None], EventKind] = {
    ("SUBSCRIBED", None): EventKind.PURCHASED,
    ("SUBSCRIBED", "INITIAL_BUY"): EventKind.PURCHASED,
    ("SUBSCRIBED", "RESUBSCRIBE"): EventKind.PURCHASED,
    ("DID_RENEW", None): EventKind.RENEWED,
    ("DID_RENEW", "BILLING_RECOVERY"): EventKind.BILLING_RECOVERED,
    ("DID_FAIL_TO_RENEW", None): EventKind.BILLING_FAILED,
    ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"): EventKind.BILLING_FAILED,
    ("GRACE_PERIOD_EXPIRED", None): EventKind.GRACE_PERIOD_EXPIRED,
    ("EXPIRED", None): EventKind.EXPIRED,
    ("DID_CHANGE_RENEWAL_PREF", None): EventKind.PRODUCT_CHANGED,
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"): EventKind.RENEWAL_ENABLED,
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"): EventKind.RENEWAL_DISABLED,
    ("DID_CHANGE_RENEWAL_STATUS", None): EventKind.INFORMATIONAL,
    ("OFFER_REDEEMED", None): EventKind.OFFER_REDEEMED,
    ("PRICE_INCREASE", None): EventKind.PRICE_INCREASE,
    ("REFUND", None): EventKind.REFUNDED,
    ("REFUND_DECLINED", None): EventKind.REFUND_DECLINED,
    ("REFUND_REVERSED", None): EventKind.REFUND_REVERSED,
    ("REVOKE", None): EventKind.REVOKED,
    ("CONSUMPTION_REQUEST", None): EventKind.CONSUMPTION_REQUEST,
    ("RENEWAL_EXTENDED", None): EventKind.RENEWAL_EXTENDED,
    ("RENEWAL_EXTENSION", None): EventKind.INFORMATIONAL,
    ("ONE_TIME_CHARGE", None): EventKind.PURCHASED,
    # Advanced Commerce API only; recorded, state comes from the signed transaction.
    ("METADATA_UPDATE", None): EventKind.INFORMATIONAL,
    ("MIGRATION", None): EventKind.INFORMATIONAL,
    ("PRICE_CHANGE", None): EventKind.INFORMATIONAL,
}

# Types that never describe an in-app purchase: no StoreEvent, whatever they carry.
NO_PURCHASE_TYPES = frozenset({"TEST", "EXTERNAL_PURCHASE_TOKEN", "RESCIND_CONSENT"})

STATUSES: dict[int, Status] = {
    1: Status.ACTIVE,
    2: Status.EXPIRED,
    3: Status.BILLING_RETRY,
    4: Status.GRACE_PERIOD,
    5: Status.REVOKED,
}

PRODUCT_KINDS: dict[str, PurchaseKind] = {
    "Auto-Renewable Subscription": PurchaseKind.SUBSCRIPTION,
    "Non-Renewing Subscription": PurchaseKind.NON_RENEWING,
    "Non-Consumable": PurchaseKind.NON_CONSUMABLE,
    "Consumable": PurchaseKind.CONSUMABLE,
}

EXPIRATION_REASONS: dict[int, str] = {
    1: "cancelled",
    2: "billing_error",
    3: "price_increase_not_accepted",
    4: "product_unavailable",
    5: "other",
}

_REVOCATION_REASONS = {0: "other", 1: "app_issue"}


def event_kind(notification_type: str | None, subtype: str | None) -> EventKind | None:
    """Our kind for a V2 type/subtype; None for types that are not about a purchase."""
    if notification_type is None or notification_type in NO_PURCHASE_TYPES:
        return None
    kind = EVENT_KINDS.get((notification_type, subtype))
    if kind is None:
        kind = EVENT_KINDS.get((notification_type, None), EventKind.INFORMATIONAL)
    return kind


def from_ms(value: int | None) -> datetime | None:
    """Apple's integer milliseconds as an aware UTC datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _required_ms(value: int | None, name: str) -> datetime:
    when = from_ms(value)
    if when is None:
        raise MalformedPayload(f"Apple payload lacks {name}")
    return when


def is_sandbox(environment: str | None) -> bool:
    """Sandbox, Xcode and LocalTesting purchases are not real money."""
    return environment in SANDBOX_ENVIRONMENTS


def period_type(offer_type: int | None, discount_type: str | None) -> PeriodType:
    """FREE_TRIAL → trial; any other offer (intro, promotional, code, win-back) → intro."""
    if discount_type == "FREE_TRIAL":
        return PeriodType.TRIAL
    if offer_type is not None or discount_type is not None:
        return PeriodType.INTRO
    return PeriodType.NORMAL


def revocation_reason(p: Any) -> str | None:
    """e.g. "refund_full:app_issue", "family_revoke"; None when not revoked."""
    if p.revocationDate is None:
        return None
    parts = []
    if p.rawRevocationType is not None:
        parts.append(str(p.rawRevocationType).lower())
    if p.rawRevocationReason is not None:
        parts.append(_REVOCATION_REASONS.get(p.rawRevocationReason, str(p.rawRevocationReason)))
    return ":".join(parts) or "revoked"


def transaction_facts(t: VerifiedTransaction) -> TransactionFacts:
    """The facts of one signed transaction."""
    p = t.payload
    if not p.transactionId or not p.productId:
        raise MalformedPayload("Apple transaction lacks transactionId or productId")
    kind = PRODUCT_KINDS.get(p.rawType or "")
    if kind is None:
        raise MalformedPayload("Apple transaction has an unknown product type")
    return TransactionFacts(
        transaction_id=p.transactionId,
        product_id=p.productId,
        kind=kind,
        purchased_at=_required_ms(p.purchaseDate, "purchaseDate"),
        signed_at=_required_ms(p.signedDate, "signedDate"),
        expires_at=from_ms(p.expiresDate),
        original_purchased_at=from_ms(p.originalPurchaseDate),
        revoked_at=from_ms(p.revocationDate),
        revocation_reason=revocation_reason(p),
        period_type=period_type(p.rawOfferType, p.rawOfferDiscountType),
        ownership=(
            Ownership.FAMILY_SHARED
            if p.rawInAppOwnershipType == "FAMILY_SHARED"
            else Ownership.PURCHASED
        ),
        price=transaction_price(p.price, p.currency),
        order_id=p.transactionId,
    )


def transaction_price(milliunits: int | None, currency: str | None) -> Price | None:
    """Apple's `price` (milli-units of `currency`) as an exact decimal; None when the
    transaction states no price or currency (older transactions)."""
    if milliunits is None or not currency:
        return None
    return Price(decimal_text(Decimal(int(milliunits)).scaleb(-3)), currency)


def renewal_facts(r: VerifiedRenewalInfo) -> RenewalFacts:
    """The renewal intent of one signed renewal info."""
    p = r.payload
    price = p.rawPriceIncreaseStatus
    intent = p.rawExpirationIntent
    return RenewalFacts(
        signed_at=_required_ms(p.signedDate, "signedDate"),
        will_renew=p.rawAutoRenewStatus == 1,
        auto_renew_product_id=p.autoRenewProductId,
        in_billing_retry=bool(p.isInBillingRetryPeriod),
        grace_period_expires_at=from_ms(p.gracePeriodExpiresDate),
        price_increase_accepted=None if price is None else price == 1,
        expiration_reason=None if intent is None else EXPIRATION_REASONS.get(intent, "other"),
    )


def purchase_event(
    transaction: VerifiedTransaction | None,
    renewal: VerifiedRenewalInfo | None,
    *,
    kind: EventKind,
    occurred_at: datetime | None = None,
    status: int | None = None,
    environment: str | None = None,
    details: dict[str, Any] | None = None,
    app: str | None = None,
) -> StoreEvent:
    """One StoreEvent from a signed transaction and/or renewal info of the same purchase.

    `occurred_at` defaults to the latest signedDate of the items given; `app` (the bundle
    id) to the transaction's.
    """
    tx = transaction_facts(transaction) if transaction is not None else None
    rn = renewal_facts(renewal) if renewal is not None else None
    original_id = None
    if transaction is not None:
        original_id = transaction.payload.originalTransactionId
    if original_id is None and renewal is not None:
        original_id = renewal.payload.originalTransactionId
    if not original_id:
        raise MalformedPayload("Apple payload lacks originalTransactionId")
    if occurred_at is None:
        occurred_at = max(f.signed_at for f in (tx, rn) if f is not None)
    verdict = STATUSES.get(status) if status is not None else None
    if verdict is Status.REVOKED and tx is not None and tx.revoked_at is None:
        # Apple says REVOKED without a revocationDate: its signedDate is the store's time.
        tx = replace(tx, revoked_at=occurred_at)
    token = None
    if transaction is not None:
        token = transaction.payload.appAccountToken
    if token is None and renewal is not None:
        token = renewal.payload.appAccountToken
    env = environment
    if env is None and transaction is not None:
        env = transaction.payload.rawEnvironment
    if env is None and renewal is not None:
        env = renewal.payload.rawEnvironment
    info: dict[str, Any] = dict(details or {})
    if transaction is not None:
        p = transaction.payload
        info["transaction_id"] = p.transactionId
        for key, value in (
            ("offer_identifier", p.offerIdentifier),
            ("revocation_percentage", p.revocationPercentage),
            ("is_upgraded", p.isUpgraded),
            ("transaction_reason", p.rawTransactionReason),
        ):
            if value is not None:
                info[key] = value
    return StoreEvent(
        store=Store.APP_STORE,
        purchase_id=original_id,
        kind=kind,
        occurred_at=occurred_at,
        is_sandbox=is_sandbox(env),
        transaction=tx,
        renewal=rn,
        status=verdict,
        flags=_flags(verdict, rn, occurred_at),
        app_user_id=token or None,
        environment=env,
        details=info,
        app=app or (transaction.payload.bundleId if transaction is not None else None),
    )


_BILLING_ISSUE = frozenset({Status.GRACE_PERIOD, Status.BILLING_RETRY})


def _flags(
    verdict: Status | None, renewal: RenewalFacts | None, signed: datetime
) -> tuple[FlagStatement, ...]:
    """Auto-renew off / billing issue as Apple states them, at its signed dates."""
    flags = []
    if renewal is not None:
        flags.append(FlagStatement(Flag.UNSUBSCRIBE, not renewal.will_renew, renewal.signed_at))
    if verdict in _BILLING_ISSUE or (renewal is not None and renewal.in_billing_retry):
        flags.append(FlagStatement(Flag.BILLING_ISSUE, True, signed))
    elif verdict is Status.ACTIVE:
        flags.append(FlagStatement(Flag.BILLING_ISSUE, False, signed))
    return tuple(flags)


def notification_events(notification: AppleNotification) -> list[StoreEvent]:
    """The StoreEvents a verified notification states: zero or one."""
    kind = event_kind(notification.notification_type, notification.subtype)
    if kind is None or (notification.transaction is None and notification.renewal is None):
        return []
    data = notification.payload.data
    details: dict[str, Any] = {
        "notification_type": notification.notification_type,
        "subtype": notification.subtype,
        "notification_uuid": notification.notification_uuid,
    }
    if data is not None and data.rawConsumptionRequestReason is not None:
        details["consumption_request_reason"] = data.rawConsumptionRequestReason
    return [
        purchase_event(
            notification.transaction,
            notification.renewal,
            kind=kind,
            occurred_at=_required_ms(notification.payload.signedDate, "signedDate"),
            status=data.rawStatus if data is not None else None,
            environment=notification.environment,
            details=details,
            app=data.bundleId if data is not None else None,
        )
    ]


def transaction_event(
    transaction: VerifiedTransaction, *, kind: EventKind = EventKind.STATE_REFRESHED
) -> StoreEvent:
    """A bare signed transaction (submitted by the app or read from the API)."""
    return purchase_event(transaction, None, kind=kind)
