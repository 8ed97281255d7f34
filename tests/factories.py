"""Store-neutral StoreEvent builders for tests that do not need a real store payload."""

from __future__ import annotations

from datetime import datetime, timedelta

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    PeriodType,
    PurchaseKind,
    RenewalFacts,
    Status,
    Store,
    StoreEvent,
    TransactionFacts,
)


def subscription_event(
    *,
    purchase_id: str = "otx-1",
    transaction_id: str = "tx-1",
    product_id: str = "com.example.premium.monthly",
    purchased_at: datetime,
    expires_at: datetime | None = None,
    signed_at: datetime | None = None,
    status: Status | None = Status.ACTIVE,
    will_renew: bool = True,
    in_billing_retry: bool = False,
    grace_period_expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
    period_type: PeriodType = PeriodType.NORMAL,
    kind: EventKind = EventKind.PURCHASED,
    app_user_id: str | None = None,
    store: Store = Store.APP_STORE,
    is_sandbox: bool = False,
    purchase_kind: PurchaseKind = PurchaseKind.SUBSCRIPTION,
    revoked_by_notification_at: datetime | None = None,
    supersedes: str | None = None,
    flags: tuple[FlagStatement, ...] | None = None,
) -> StoreEvent:
    """By default the flag statements are what Apple would state at the signed time
    (auto-renew from the renewal intent, billing from the verdict); pass `flags` to state
    others (Google's come from cancel and event times, not from the read)."""
    signed = signed_at or purchased_at
    if flags is None:
        derived = []
        if purchase_kind is PurchaseKind.SUBSCRIPTION:
            derived.append(FlagStatement(Flag.UNSUBSCRIBE, not will_renew, signed))
        if in_billing_retry or status in (Status.GRACE_PERIOD, Status.BILLING_RETRY):
            derived.append(FlagStatement(Flag.BILLING_ISSUE, True, signed))
        elif status is Status.ACTIVE:
            derived.append(FlagStatement(Flag.BILLING_ISSUE, False, signed))
        flags = tuple(derived)
    return StoreEvent(
        store=store,
        purchase_id=purchase_id,
        kind=kind,
        occurred_at=signed,
        is_sandbox=is_sandbox,
        transaction=TransactionFacts(
            transaction_id=transaction_id,
            product_id=product_id,
            kind=purchase_kind,
            purchased_at=purchased_at,
            signed_at=signed,
            expires_at=expires_at
            if expires_at is not None or purchase_kind is not PurchaseKind.SUBSCRIPTION
            else purchased_at + timedelta(days=30),
            revoked_at=revoked_at,
            period_type=period_type,
        ),
        renewal=RenewalFacts(
            signed_at=signed,
            will_renew=will_renew,
            in_billing_retry=in_billing_retry,
            grace_period_expires_at=grace_period_expires_at,
        )
        if purchase_kind is PurchaseKind.SUBSCRIPTION
        else None,
        status=status,
        app_user_id=app_user_id,
        revoked_at=revoked_by_notification_at,
        flags=flags,
        supersedes=supersedes,
    )
