"""The contract's `active` rule and entitlement selection, as tables. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from entitlements.access import (
    Catalog,
    CustomerRecord,
    Grant,
    effective_status,
    entitlements_of,
    is_active,
)
from entitlements.model import (
    Ownership,
    PeriodType,
    PurchaseKind,
    PurchaseView,
    Status,
    Store,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PAST = NOW - timedelta(seconds=1)
FUTURE = NOW + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "expires_at", "grace", "active"),
    [
        (Status.ACTIVE, FUTURE, None, True),
        (Status.ACTIVE, None, None, True),  # lifetime
        (Status.ACTIVE, NOW, None, False),  # the period ends at expires_at
        (Status.ACTIVE, PAST, None, False),
        (Status.GRACE_PERIOD, PAST, FUTURE, True),
        (Status.GRACE_PERIOD, PAST, PAST, False),
        (Status.GRACE_PERIOD, PAST, None, False),
        (Status.BILLING_RETRY, FUTURE, FUTURE, False),
        (Status.ON_HOLD, FUTURE, None, False),
        (Status.PAUSED, FUTURE, None, False),
        (Status.EXPIRED, FUTURE, None, False),
        (Status.REVOKED, FUTURE, None, False),
        (Status.PENDING, FUTURE, None, False),
    ],
)
def test_active_rule(status, expires_at, grace, active) -> None:
    assert is_active(status, expires_at, grace, NOW) is active


def test_active_period_past_its_end_reads_expired() -> None:
    assert effective_status(Status.ACTIVE, PAST, NOW) is Status.EXPIRED
    assert effective_status(Status.ACTIVE, FUTURE, NOW) is Status.ACTIVE
    assert effective_status(Status.ACTIVE, None, NOW) is Status.ACTIVE
    assert effective_status(Status.REVOKED, PAST, NOW) is Status.REVOKED


def view(pid: str, product: str, status: Status, expires: datetime | None, **kw) -> PurchaseView:
    fields = {
        "store": Store.APP_STORE,
        "purchase_id": pid,
        "product_id": product,
        "kind": PurchaseKind.SUBSCRIPTION,
        "status": status,
        "period_type": PeriodType.NORMAL,
        "will_renew": True,
        "expires_at": expires,
        "grace_period_expires_at": None,
        "purchased_at": NOW - timedelta(days=10),
        "is_sandbox": False,
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
        "ownership": Ownership.PURCHASED,
        "superseded": False,
    }
    fields.update(kw)
    return PurchaseView(**fields)


CATALOG = Catalog({"premium": frozenset({"m", "y"}), "pro": frozenset({"p"})})


def record(*purchases: PurchaseView, grants=(), suspended=False) -> CustomerRecord:
    return CustomerRecord("u-1", suspended, tuple(purchases), tuple(grants))


def test_the_purchase_giving_access_now_is_shown() -> None:
    expired_later = view("a", "y", Status.EXPIRED, NOW + timedelta(days=300))
    active = view("b", "m", Status.ACTIVE, NOW + timedelta(days=3))
    shown = entitlements_of(record(expired_later, active), CATALOG, NOW)["premium"]
    assert shown["active"] is True
    assert shown["product_id"] == "m"


def test_among_inactive_the_latest_expiry_is_shown() -> None:
    old = view("a", "m", Status.EXPIRED, NOW - timedelta(days=30))
    newer = view("b", "y", Status.EXPIRED, NOW - timedelta(days=1))
    shown = entitlements_of(record(old, newer), CATALOG, NOW)["premium"]
    assert shown["product_id"] == "y"
    assert shown["status"] == "expired"


def test_entitlements_never_had_are_absent_and_consumables_superseded_pending_do_not_count() -> (
    None
):
    consumable = view("c", "p", Status.ACTIVE, None, kind=PurchaseKind.CONSUMABLE)
    superseded = view("s", "m", Status.EXPIRED, FUTURE, superseded=True)
    pending = view("q", "y", Status.PENDING, FUTURE)
    assert entitlements_of(record(consumable, superseded, pending), CATALOG, NOW) == {}


def test_grants_expired_and_lifted_read_inactive() -> None:
    running = Grant(1, "pro", NOW - timedelta(days=1), None, None)
    ran_out = Grant(2, "premium", NOW - timedelta(days=40), NOW - timedelta(days=10), None)
    got = entitlements_of(record(grants=[running, ran_out]), CATALOG, NOW)
    assert got["pro"]["active"] is True
    assert got["pro"]["store"] == "promotional"
    assert got["pro"]["period_type"] == "promotional"
    assert got["pro"]["expires_at"] is None
    assert got["premium"]["status"] == "expired"
    lifted = Grant(3, "pro", NOW - timedelta(days=1), None, NOW - timedelta(hours=1))
    got = entitlements_of(record(grants=[lifted]), CATALOG, NOW)
    assert got["pro"]["status"] == "revoked"
    assert got["pro"]["active"] is False


def test_suspension_makes_every_entitlement_inactive() -> None:
    active = view("b", "m", Status.ACTIVE, FUTURE)
    got = entitlements_of(record(active, suspended=True), CATALOG, NOW)
    assert got["premium"]["active"] is False
    assert got["premium"]["status"] == "active"
