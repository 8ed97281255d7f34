"""The contract's `active` rule and entitlement selection, as tables. No I/O."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from entitlements.access import (
    Catalog,
    CustomerRecord,
    Grant,
    customer_object,
    effective_status,
    entitlement_summary,
    entitlements_of,
    grant_fields,
    is_active,
    price_fields,
    purchase_fields,
    rfc3339,
)
from entitlements.model import (
    Ownership,
    PeriodType,
    Price,
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


# --- boundaries, fields and the customer object ---------------------------------------------


def test_catalog_names_and_definitions() -> None:
    assert CATALOG.names() == ["premium", "pro"]
    assert CATALOG.defines("pro") is True
    assert CATALOG.defines("gold") is False


@pytest.mark.parametrize(
    ("status", "expires", "grace", "shown", "active"),
    [
        (Status.ACTIVE, NOW, None, "expired", False),  # the paid period ends at expires_at
        (Status.ACTIVE, FUTURE, None, "active", True),
        (Status.ACTIVE, PAST, None, "expired", False),
        (Status.GRACE_PERIOD, PAST, FUTURE, "grace_period", True),
        (Status.GRACE_PERIOD, PAST, NOW, "grace_period", False),  # grace ends at its end
        (Status.BILLING_RETRY, PAST, None, "billing_retry", False),
        (Status.ON_HOLD, PAST, None, "on_hold", False),
    ],
)
def test_status_and_active_at_the_boundaries(status, expires, grace, shown, active) -> None:
    fields = purchase_fields(view("a", "m", status, expires, grace_period_expires_at=grace), NOW)
    assert (fields["status"], fields["active"]) == (shown, active)


@pytest.mark.parametrize(
    ("status", "expires", "renewing", "will_renew"),
    [
        (Status.ACTIVE, FUTURE, True, True),
        (Status.ACTIVE, FUTURE, False, False),  # cancelled: access to the end, no renewal
        (Status.ACTIVE, PAST, True, False),  # the period ended: an expired one never renews
        (Status.EXPIRED, FUTURE, True, False),
        (Status.REVOKED, FUTURE, True, False),  # refunded or revoked: ended at once
        (Status.GRACE_PERIOD, PAST, True, True),  # the store still retries the charge
    ],
)
def test_only_a_live_subscription_says_it_will_renew(status, expires, renewing, will_renew) -> None:
    p = view("a", "m", status, expires, will_renew=renewing)
    assert purchase_fields(p, NOW)["will_renew"] is will_renew


def test_purchase_fields_field_by_field() -> None:
    p = view(
        "otx-1",
        "m",
        Status.GRACE_PERIOD,
        PAST,
        period_type=PeriodType.TRIAL,
        grace_period_expires_at=NOW + timedelta(days=3),
        purchased_at=datetime(2026, 10, 25, 10, 0, 0, 999, tzinfo=UTC),
        is_sandbox=True,
        unsubscribe_detected_at=NOW - timedelta(hours=2),
        billing_issue_detected_at=NOW - timedelta(hours=1),
        revoked_at=NOW - timedelta(minutes=1),
        ownership=Ownership.FAMILY_SHARED,
        app="com.example.app.lite",
        price=Price("9.99", "USD"),
    )
    assert purchase_fields(p, NOW) == {
        "active": True,
        "status": "grace_period",
        "period_type": "trial",
        "will_renew": True,
        "expires_at": "2026-11-25T09:59:59Z",
        "grace_period_expires_at": "2026-11-28T10:00:00Z",
        "product_id": "m",
        "store": "app_store",
        "is_sandbox": True,
        "purchased_at": "2026-10-25T10:00:00Z",
        "unsubscribe_detected_at": "2026-11-25T08:00:00Z",
        "billing_issue_detected_at": "2026-11-25T09:00:00Z",
        "revoked_at": "2026-11-25T09:59:00Z",
        "ownership": "family_shared",
        "app": "com.example.app.lite",
        "price": {"amount": "9.99", "currency": "USD"},
        "original_transaction_id": "otx-1",
    }
    google = purchase_fields(view("tok-1", "m", Status.ACTIVE, FUTURE, store=Store.PLAY_STORE), NOW)
    assert google["purchase_token"] == "tok-1"
    assert "original_transaction_id" not in google
    assert google["store"] == "play_store"


@pytest.mark.parametrize(
    ("starts", "expires", "ended", "status", "active"),
    [
        (NOW, None, None, "active", True),  # granted this very second
        (PAST, NOW, None, "expired", False),  # a grant ends at its expiry
        (PAST, FUTURE, NOW, "revoked", False),  # lifted this very second
        # lifted by a replica whose clock runs ahead of this request's instant: not yet
        (PAST, FUTURE, FUTURE, "active", True),
    ],
)
def test_grant_status_at_the_boundaries(starts, expires, ended, status, active) -> None:
    fields = grant_fields(Grant(7, "pro", starts, expires, ended), NOW)
    assert (fields["status"], fields["active"]) == (status, active)
    assert fields["revoked_at"] == (rfc3339(ended) if status == "revoked" else None)


def test_grant_fields_field_by_field() -> None:
    grant = Grant(7, "pro", NOW - timedelta(days=1), NOW + timedelta(days=30), None)
    assert grant_fields(grant, NOW) == {
        "active": True,
        "status": "active",
        "period_type": "promotional",
        "will_renew": False,
        "expires_at": "2026-12-25T10:00:00Z",
        "grace_period_expires_at": None,
        "product_id": None,
        "store": "promotional",
        "is_sandbox": False,
        "purchased_at": "2026-11-24T10:00:00Z",
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }


def test_the_shown_purchase_does_not_depend_on_the_order_purchases_are_listed() -> None:
    """Same expiry, both inactive: the latest purchase is shown, whatever the order."""
    older = view("a", "m", Status.EXPIRED, PAST, purchased_at=NOW - timedelta(days=60))
    newer = view("b", "y", Status.EXPIRED, PAST, purchased_at=NOW - timedelta(days=30))
    for purchases in ((older, newer), (newer, older)):
        assert entitlements_of(record(*purchases), CATALOG, NOW)["premium"]["product_id"] == "y"


def test_customer_object() -> None:
    sub_late = view("s2", "y", Status.ACTIVE, FUTURE, purchased_at=NOW - timedelta(days=1))
    sub_early = view("s1", "m", Status.EXPIRED, PAST, purchased_at=NOW - timedelta(days=9))
    lifetime = view(
        "p1", "p", Status.ACTIVE, None, kind=PurchaseKind.NON_CONSUMABLE, will_renew=False
    )
    season = view(  # an Apple non-renewing pass whose duration is over
        "p2",
        "p",
        Status.ACTIVE,
        PAST,
        kind=PurchaseKind.NON_RENEWING,
        will_renew=False,
        purchased_at=NOW - timedelta(days=90),
    )
    rec = CustomerRecord("u-9", False, (sub_late, lifetime, sub_early, season), ())
    got = customer_object(rec, CATALOG, NOW)
    assert set(got) == {"app_user_id", "suspended", "entitlements", "subscriptions", "purchases"}
    assert (got["app_user_id"], got["suspended"]) == ("u-9", False)
    assert got["entitlements"] == entitlements_of(rec, CATALOG, NOW)
    assert [s["original_transaction_id"] for s in got["subscriptions"]] == ["s1", "s2"]
    assert got["subscriptions"][1] == purchase_fields(sub_late, NOW)
    assert got["purchases"] == [purchase_fields(season, NOW), purchase_fields(lifetime, NOW)]
    assert got["purchases"][0]["status"] == "expired"
    same_day = view("s3", "a", Status.ACTIVE, FUTURE, purchased_at=NOW - timedelta(days=1))
    rec = CustomerRecord("u-9", True, (sub_late, same_day), ())
    got = customer_object(rec, CATALOG, NOW)
    assert got["suspended"] is True
    assert [s["product_id"] for s in got["subscriptions"]] == ["a", "y"]


def test_entitlement_summary() -> None:
    got = entitlements_of(record(view("b", "m", Status.ACTIVE, FUTURE)), CATALOG, NOW)
    assert entitlement_summary("u-1", "premium", got) == {
        "app_user_id": "u-1",
        "entitlement": "premium",
        "active": True,
        "status": "active",
        "expires_at": rfc3339(FUTURE),
    }
    assert entitlement_summary("u-1", "pro", got) == {
        "app_user_id": "u-1",
        "entitlement": "pro",
        "active": False,
        "status": None,
        "expires_at": None,
    }


@pytest.fixture
def host_timezone_far_from_utc():
    """The host's local time zone at UTC+9 (POSIX TZ rule: no zoneinfo files needed)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("host_timezone_far_from_utc")
def test_times_are_utc_seconds_with_z_whatever_the_host_time_zone() -> None:
    assert rfc3339(datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)) == "2026-03-04T05:06:07Z"
    paris = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 3, 4, 0, 30, tzinfo=paris)) == "2026-03-03T23:30:00Z"
    assert rfc3339(None) is None


def test_the_customer_object_does_not_depend_on_the_order_purchases_are_stored() -> None:
    """A resubscription to the same product (a new Google purchase token): the lists come
    out the same whatever order the store purchases were loaded in."""
    first = view(
        "tok-1",
        "m",
        Status.EXPIRED,
        NOW - timedelta(days=60),
        store=Store.PLAY_STORE,
        purchased_at=NOW - timedelta(days=90),
    )
    again = view(
        "tok-2",
        "m",
        Status.ACTIVE,
        FUTURE,
        store=Store.PLAY_STORE,
        purchased_at=NOW - timedelta(days=5),
    )
    one = customer_object(CustomerRecord("u-1", False, (first, again), ()), CATALOG, NOW)
    other = customer_object(CustomerRecord("u-1", False, (again, first), ()), CATALOG, NOW)
    assert one == other
    assert [s["purchase_token"] for s in one["subscriptions"]] == ["tok-1", "tok-2"]


def test_price_fields_and_the_entitlements_a_product_gives() -> None:
    assert price_fields(Price("9.99", "USD")) == {"amount": "9.99", "currency": "USD"}
    assert price_fields(None) is None
    assert CATALOG.entitlements_for("m") == frozenset({"premium"})
    assert CATALOG.entitlements_for("nope") == frozenset()
    both = Catalog({"a": frozenset({"x"}), "b": frozenset({"x", "y"})})
    assert both.entitlements_for("x") == frozenset({"a", "b"})
