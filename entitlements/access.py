"""The entitlement rules of contract §3/§4, evaluated at request time. Pure: `now` is passed in.

From a customer's purchases and grants and the configured catalog, compute the customer
object: which entitlements exist, which purchase or grant shows for each, and `active`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from entitlements.model import PeriodType, Price, PurchaseKind, PurchaseView, Status, Store
from entitlements.state import grants_access


@dataclass(frozen=True, slots=True)
class Catalog:
    """Entitlement name → the product ids (of either store) that give it."""

    products_by_entitlement: Mapping[str, frozenset[str]]

    def names(self) -> list[str]:
        """The configured entitlement names, sorted."""
        return sorted(self.products_by_entitlement)

    def defines(self, name: str) -> bool:
        """Whether an entitlement named `name` is configured."""
        return name in self.products_by_entitlement

    def entitlements_for(self, product_id: str) -> frozenset[str]:
        """The entitlements a product gives."""
        return frozenset(
            name
            for name, products in self.products_by_entitlement.items()
            if product_id in products
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """A promotional grant by an operator."""

    id: int
    entitlement: str
    starts_at: datetime
    expires_at: datetime | None  # None: lifetime
    ended_at: datetime | None  # lifted by an operator


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """Everything stored that the customer object is computed from."""

    app_user_id: str
    suspended: bool
    purchases: tuple[PurchaseView, ...]
    grants: tuple[Grant, ...]


def effective_status(status: Status, expires_at: datetime | None, now: datetime) -> Status:
    """An active period whose end has passed reads as expired (cancelled or not renewed)."""
    if status is Status.ACTIVE and expires_at is not None and expires_at <= now:
        return Status.EXPIRED
    return status


def is_active(
    status: Status,
    expires_at: datetime | None,
    grace_period_expires_at: datetime | None,
    now: datetime,
) -> bool:
    """Contract §3: active while `active` and not past expiry (None = lifetime), or in grace
    while the grace period lasts. Everything else is inactive."""
    if status is Status.ACTIVE:
        return expires_at is None or expires_at > now
    if status is Status.GRACE_PERIOD:
        return grace_period_expires_at is not None and grace_period_expires_at > now
    return False


def purchase_fields(p: PurchaseView, now: datetime) -> dict[str, Any]:
    """The contract's per-purchase object (as listed under subscriptions/purchases)."""
    status = effective_status(p.status, p.expires_at, now)
    out: dict[str, Any] = {
        "active": is_active(status, p.expires_at, p.grace_period_expires_at, now),
        "status": status.value,
        "period_type": p.period_type.value,
        "will_renew": p.will_renew and status not in (Status.EXPIRED, Status.REVOKED),
        "expires_at": rfc3339(p.expires_at),
        "grace_period_expires_at": rfc3339(p.grace_period_expires_at),
        "product_id": p.product_id,
        "store": p.store.value,
        "is_sandbox": p.is_sandbox,
        "purchased_at": rfc3339(p.purchased_at),
        "unsubscribe_detected_at": rfc3339(p.unsubscribe_detected_at),
        "billing_issue_detected_at": rfc3339(p.billing_issue_detected_at),
        "revoked_at": rfc3339(p.revoked_at),
        "ownership": p.ownership.value,
        "app": p.app,
        "price": None
        if p.price is None
        else {"amount": p.price.amount, "currency": p.price.currency},
    }
    key = "original_transaction_id" if p.store is Store.APP_STORE else "purchase_token"
    out[key] = p.purchase_id
    return out


def price_fields(price: Price | None) -> dict[str, str] | None:
    """The contract's `price` object: `{"amount": "9.99", "currency": "USD"}`, or None."""
    return None if price is None else {"amount": price.amount, "currency": price.currency}


def grant_fields(g: Grant, now: datetime) -> dict[str, Any]:
    """A grant shown as an entitlement: store `promotional`, period `promotional`."""
    if g.ended_at is not None and g.ended_at <= now:
        status = Status.REVOKED
    elif g.expires_at is not None and g.expires_at <= now:
        status = Status.EXPIRED
    else:
        status = Status.ACTIVE
    return {
        "active": status is Status.ACTIVE and g.starts_at <= now,
        "status": status.value,
        "period_type": PeriodType.PROMOTIONAL.value,
        "will_renew": False,
        "expires_at": rfc3339(g.expires_at),
        "grace_period_expires_at": None,
        "product_id": None,
        "store": Store.PROMOTIONAL.value,
        "is_sandbox": False,
        "purchased_at": rfc3339(g.starts_at),
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": rfc3339(g.ended_at) if status is Status.REVOKED else None,
    }


_ENTITLEMENT_KEYS = (
    "active",
    "status",
    "period_type",
    "will_renew",
    "expires_at",
    "grace_period_expires_at",
    "product_id",
    "store",
    "is_sandbox",
    "purchased_at",
    "unsubscribe_detected_at",
    "billing_issue_detected_at",
    "revoked_at",
)


def entitlements_of(
    record: CustomerRecord, catalog: Catalog, now: datetime
) -> dict[str, dict[str, Any]]:
    """Every entitlement the customer ever had, each shown by its best candidate: the one
    giving access now, then the latest expiry (lifetime counts as latest)."""
    result: dict[str, dict[str, Any]] = {}
    for name in catalog.names():
        products = catalog.products_by_entitlement[name]
        candidates = [
            purchase_fields(p, now)
            for p in record.purchases
            if p.product_id in products and _can_grant(p)
        ]
        candidates += [grant_fields(g, now) for g in record.grants if g.entitlement == name]
        if not candidates:
            continue
        best = max(candidates, key=_rank)
        shown = {k: best[k] for k in _ENTITLEMENT_KEYS}
        if record.suspended:
            shown["active"] = False
        result[name] = shown
    return result


def customer_object(record: CustomerRecord, catalog: Catalog, now: datetime) -> dict[str, Any]:
    """The contract's customer object (without `as_of`, which the caller stamps)."""
    subscriptions = [
        purchase_fields(p, now) for p in record.purchases if p.kind is PurchaseKind.SUBSCRIPTION
    ]
    others = [
        purchase_fields(p, now) for p in record.purchases if p.kind is not PurchaseKind.SUBSCRIPTION
    ]
    return {
        "app_user_id": record.app_user_id,
        "suspended": record.suspended,
        "entitlements": entitlements_of(record, catalog, now),
        "subscriptions": _sorted(subscriptions),
        "purchases": _sorted(others),
    }


def entitlement_summary(
    app_user_id: str, name: str, entitlements: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`GET …/entitlements/{name}`: active false and nulls when never had."""
    e = entitlements.get(name)
    return {
        "app_user_id": app_user_id,
        "entitlement": name,
        "active": bool(e and e["active"]),
        "status": e["status"] if e else None,
        "expires_at": e["expires_at"] if e else None,
    }


def _can_grant(p: PurchaseView) -> bool:
    return grants_access(p.kind) and not p.superseded and p.status is not Status.PENDING


def _rank(candidate: Mapping[str, Any]) -> tuple[bool, str, str]:
    # ISO-8601 UTC strings order like the instants; "~" sorts after any date: lifetime.
    expires = candidate["expires_at"] or "~"
    return (bool(candidate["active"]), expires, candidate["purchased_at"] or "")


def _sorted(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda c: (c["purchased_at"] or "", c["product_id"] or ""))


def rfc3339(value: datetime | None) -> str | None:
    """UTC, second precision, `Z` suffix: `2026-11-25T10:00:00Z`."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_change(record: CustomerRecord, now: datetime) -> datetime | None:
    """The first instant after `now` at which anything this module computes from `record`
    changes by time alone (an `active` flag or a `status`: expiry, grace end, a grant's
    start, end or expiry); None when nothing ever will. Every instant compared with `now`
    above is a candidate, so an answer rendered at `now` holds until just before it."""
    candidates = [
        moment
        for p in record.purchases
        for moment in (p.expires_at, p.grace_period_expires_at)
        if moment is not None and moment > now
    ]
    candidates += [
        moment
        for g in record.grants
        for moment in (g.starts_at, g.expires_at, g.ended_at)
        if moment is not None and moment > now
    ]
    return min(candidates, default=None)
