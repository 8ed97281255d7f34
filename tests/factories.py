"""Store-neutral StoreEvent builders for tests that do not need a real store payload."""

from __future__ import annotations

from datetime import datetime, timedelta

from entitlements.model import (
    EventKind,
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
    revoke: bool = False,
    supersedes: str | None = None,
) -> StoreEvent:
    signed = signed_at or purchased_at
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
        revoke=revoke,
        supersedes=supersedes,
    )
