"""SubscriptionPurchaseV2 / ProductPurchase → StoreEvent: the state-mapping table."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    PeriodType,
    Price,
    PurchaseKind,
    Status,
    Store,
)
from entitlements.state import apply, view
from receipts.google.notifications import SUBSCRIPTION_NOTIFICATION_NAMES
from receipts.google.translate import (
    Category,
    classify,
    gone_subscription,
    line_item_price,
    needs_acknowledgement,
    product_events,
    subscription_events,
    voided_event,
    voided_purchase_event,
)
from simulators.google_signer import subscription_notification, voided_notification
from simulators.play_purchases import (
    SUBSCRIPTION_STATES,
    product_purchase,
    subscription_purchase,
)

PKG = "com.example.app"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # when this host read the Play API
EVENT_TIME = NOW - timedelta(minutes=7)  # Google's eventTimeMillis of the notification
STORE_NOW = NOW - timedelta(hours=3)  # Google's own clock when it wrote the document


def _one(
    state: str,
    code: int | None = None,
    *,
    event_time: datetime | None = EVENT_TIME,
    **kw: Any,
) -> tuple[Any, dict[str, Any]]:
    """One read at NOW of a document Google wrote around STORE_NOW (two clocks apart)."""
    purchase = subscription_purchase(state, now=STORE_NOW, **kw)
    events = subscription_events(code, "tok-1", purchase, PKG, NOW, event_time=event_time)
    assert len(events) == 1
    return events[0], purchase


# state → (status, will_renew, in_billing_retry, grace set)
STATE_TABLE = [
    ("active", Status.ACTIVE, True, False, False),
    ("canceled", Status.ACTIVE, False, False, False),
    ("grace", Status.GRACE_PERIOD, True, True, True),
    ("on_hold", Status.ON_HOLD, True, True, False),
    ("paused", Status.PAUSED, True, False, False),
    ("expired", Status.EXPIRED, False, False, False),
    ("pending", Status.PENDING, False, False, False),
    ("pending_canceled", Status.PENDING, False, False, False),
]


@pytest.mark.parametrize(("state", "status", "renews", "retry", "grace"), STATE_TABLE)
def test_subscription_state_table(
    state: str, status: Status, renews: bool, retry: bool, grace: bool
) -> None:
    event, purchase = _one(state, user="u-1")
    assert event.store is Store.PLAY_STORE
    assert event.purchase_id == "tok-1"
    assert event.occurred_at == NOW
    assert event.status is status
    expiry = datetime.fromisoformat(purchase["lineItems"][0]["expiryTime"])
    if status is Status.PENDING:
        assert event.renewal is None  # never paid: no renewal intent to state
    else:
        assert event.renewal is not None
        assert event.renewal.will_renew is renews
        assert event.renewal.in_billing_retry is retry
        assert event.renewal.grace_period_expires_at == (expiry if grace else None)
    assert event.transaction is not None
    assert event.transaction.expires_at == expiry
    assert event.transaction.kind is PurchaseKind.SUBSCRIPTION
    assert event.app_user_id == "u-1"
    assert event.revoked_at is None
    assert event.details["subscription_state"] == purchase["subscriptionState"].removeprefix(
        "SUBSCRIPTION_STATE_"
    )


def test_all_states_covered() -> None:
    assert {row[0] for row in STATE_TABLE} == set(SUBSCRIPTION_STATES)


def test_active_transaction_facts() -> None:
    event, _ = _one("active", order_id="GPA.1..3")
    t = event.transaction
    assert t.transaction_id == "tok-1"  # one transaction per line item: newest read wins
    assert t.product_id == "premium_monthly"
    assert t.purchased_at == STORE_NOW - timedelta(days=1)  # Google's startTime
    assert t.signed_at == NOW  # the read: orders Play reads, never shown
    assert t.period_type is PeriodType.NORMAL
    assert event.is_sandbox is False
    assert event.details["order_id"] == "GPA.1..3"


def test_pending_has_no_purchase_time_and_states_no_renewal() -> None:
    event, _ = _one("pending")
    assert event.transaction.purchased_at is None  # never the moment of the read
    assert event.transaction.transaction_id == "tok-1"
    assert event.renewal is None  # nothing was turned off: no unsubscribe detection
    v = view(apply(None, event))
    assert (v.status, v.purchased_at, v.unsubscribe_detected_at) == (Status.PENDING, None, None)


@pytest.mark.parametrize("skew", [timedelta(days=-400), timedelta(0), timedelta(days=400)])
def test_pending_purchase_never_grants_whatever_the_clocks(skew: timedelta) -> None:
    """Google's clock (startTime, purchaseTimeMillis) may be ahead of or behind this host's;
    a purchase Google reports pending reads pending either way."""
    sub = subscription_purchase("pending", now=NOW + skew)
    sub["startTime"] = (NOW + skew).isoformat()  # a pending upgrade may carry one
    [event] = subscription_events(4, "tok", sub, PKG, NOW, event_time=NOW + skew)
    assert view(apply(None, event)).status is Status.PENDING
    product = product_purchase(purchase_time=NOW + skew, purchase_state=2)
    [bought] = product_events(1, "pt", product, "lifetime_unlock", NOW)
    assert view(apply(None, bought)).status is Status.PENDING
    cancelled = product_purchase(purchase_time=NOW + skew, purchase_state=1)
    [gone] = product_events(2, "pt", cancelled, "lifetime_unlock", NOW + timedelta(seconds=1))
    assert view(apply(apply(None, bought), gone)).status is Status.PENDING


def test_state_machine_view_of_states() -> None:
    """The translated events read as the contract says once folded by `apply`."""
    expected = {
        "active": Status.ACTIVE,
        "canceled": Status.ACTIVE,
        "grace": Status.GRACE_PERIOD,
        "on_hold": Status.ON_HOLD,
        "paused": Status.PAUSED,
        "expired": Status.EXPIRED,
    }
    for state, status in expected.items():
        event, purchase = _one(state)
        v = view(apply(None, event))
        assert v.status is status, state
        if state == "grace":
            assert v.grace_period_expires_at == datetime.fromisoformat(
                purchase["lineItems"][0]["expiryTime"]
            )
        if state == "canceled":
            assert v.will_renew is False
            assert v.unsubscribe_detected_at == STORE_NOW  # the document's cancelTime


CODE_TABLE = {
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


def test_code_table_covers_every_documented_code() -> None:
    assert set(CODE_TABLE) == set(SUBSCRIPTION_NOTIFICATION_NAMES)
    assert set(CODE_TABLE) == {*range(1, 14), 17, 18, 19, 20, 22}


@pytest.mark.parametrize(("code", "kind"), sorted(CODE_TABLE.items()))
def test_notification_code_kind(code: int, kind: EventKind) -> None:
    event, _ = _one("active", code)
    assert event.kind is kind
    assert event.revoked_at == (EVENT_TIME if code == 12 else None)
    assert all(f.at == EVENT_TIME for f in event.flags)  # the notification's own time
    assert event.details["notification_type"] == code
    assert event.details["notification_name"] == SUBSCRIPTION_NOTIFICATION_NAMES[code]


@pytest.mark.parametrize("code", [None, 14, 21, 99])
def test_unknown_or_absent_code_is_a_state_read(code: int | None) -> None:
    event, _ = _one("active", code)
    assert event.kind is EventKind.STATE_REFRESHED
    assert event.status is Status.ACTIVE


def test_revoked_notification_revokes_even_if_api_says_active() -> None:
    event, _ = _one("active", 12)
    assert event.revoked_at == EVENT_TIME
    v = view(apply(None, event))
    assert (v.status, v.revoked_at) == (Status.REVOKED, EVENT_TIME)


# code → the flag statements its notification makes at its eventTimeMillis
FLAG_TABLE: dict[int, set[tuple[Flag, bool]]] = {
    1: {(Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)},
    2: {(Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)},
    3: {(Flag.UNSUBSCRIBE, True)},
    4: {(Flag.UNSUBSCRIBE, False), (Flag.BILLING_ISSUE, False)},
    5: {(Flag.BILLING_ISSUE, True)},
    6: {(Flag.BILLING_ISSUE, True)},
    7: {(Flag.UNSUBSCRIBE, False)},
    12: {(Flag.UNSUBSCRIBE, True)},
    13: {(Flag.UNSUBSCRIBE, True)},
}


@pytest.mark.parametrize("code", sorted(CODE_TABLE))
def test_flag_statements_by_notification_type(code: int) -> None:
    event, _ = _one("active", code)
    assert {(f.flag, f.is_set) for f in event.flags} == FLAG_TABLE.get(code, set())
    assert {f.at for f in event.flags} <= {EVENT_TIME}
    unknown, _ = _one("active", code, event_time=None)  # no store time: no statement
    assert unknown.flags == ()


def test_store_times_for_detections() -> None:
    """Contract §3: detection times are Google's, never the moment of the read."""
    canceled, doc = _one("canceled", 3)
    cancel_time = datetime.fromisoformat(
        doc["canceledStateContext"]["userInitiatedCancellation"]["cancelTime"]
    )
    assert cancel_time != EVENT_TIME
    assert FlagStatement(Flag.UNSUBSCRIBE, True, cancel_time) in canceled.flags
    assert view(apply(None, canceled)).unsubscribe_detected_at == min(cancel_time, EVENT_TIME)
    doc["canceledStateContext"] = {"systemInitiatedCancellation": {}}
    [system] = subscription_events(3, "tok-1", doc, PKG, NOW, event_time=EVENT_TIME)
    assert view(apply(None, system)).unsubscribe_detected_at == EVENT_TIME  # no cancelTime
    [unknown] = subscription_events(None, "tok-1", doc, PKG, NOW)
    assert unknown.flags == ()  # a submission read: Google gave no time
    assert view(apply(None, unknown)).unsubscribe_detected_at is None
    grace, _ = _one("grace", 6)
    assert view(apply(None, grace)).billing_issue_detected_at == EVENT_TIME
    pending, _ = _one("pending", 4)
    assert pending.flags == ()  # never paid: nothing was turned off or failed


def test_a_late_read_yields_the_same_record() -> None:
    """The same notifications processed a day later (a late delivery or a replay): the
    reads happen at other host times, the record is the same."""

    cancel_at = EVENT_TIME + timedelta(seconds=50)  # the user cancels after purchasing

    def record(steps: list[tuple[int, str]], read_at: datetime) -> Any:
        state = None
        for minutes, (code, name) in enumerate(steps):
            doc = subscription_purchase(name, now=cancel_at)
            at = read_at + timedelta(minutes=minutes)
            event_time = EVENT_TIME + timedelta(minutes=minutes)
            [event] = subscription_events(code, "tok", doc, PKG, at, event_time=event_time)
            state = apply(state, event)
        return view(state)

    cancelled = [(4, "active"), (3, "canceled"), (12, "canceled")]
    on_time, late = record(cancelled, NOW), record(cancelled, NOW + timedelta(days=1))
    assert on_time == late
    assert on_time.revoked_at == EVENT_TIME + timedelta(minutes=2)
    assert on_time.unsubscribe_detected_at == cancel_at  # the documents' cancelTime
    failing = [(4, "active"), (6, "grace"), (6, "grace")]
    on_time, late = record(failing, NOW), record(failing, NOW - timedelta(days=1))
    assert on_time == late
    assert on_time.billing_issue_detected_at == EVENT_TIME + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("phase", "offer_id", "tags", "period"),
    [
        ("trial", None, None, PeriodType.TRIAL),
        ("intro", None, None, PeriodType.INTRO),
        ("base", None, None, PeriodType.NORMAL),
        ("proration", None, None, PeriodType.NORMAL),
        (None, None, None, PeriodType.NORMAL),
        (None, "winter-free-trial", None, PeriodType.TRIAL),
        (None, "offer-7", ["intro-50"], PeriodType.INTRO),
        (None, "loyalty", ["vip"], PeriodType.NORMAL),
        ("base", "free-trial-7d", None, PeriodType.NORMAL),  # offerPhase wins
    ],
)
def test_period_type(
    phase: str | None, offer_id: str | None, tags: list[str] | None, period: PeriodType
) -> None:
    event, _ = _one("active", offer_phase=phase, offer_id=offer_id, offer_tags=tags)
    assert event.transaction.period_type is period


def test_test_purchase_is_sandbox() -> None:
    event, _ = _one("active", test_purchase=True)
    assert event.is_sandbox is True


def test_prepaid_plan_never_renews() -> None:
    event, _ = _one("active", prepaid=True)
    assert event.renewal.will_renew is False
    assert event.details["prepaid"] is True


def test_linked_token_supersedes_but_not_while_pending() -> None:
    event, _ = _one("active", linked_token="old-token")
    assert event.supersedes == "old-token"
    assert "old-token" not in repr(event.details)
    for state in ("pending", "pending_canceled"):
        pending, _ = _one(state, linked_token="old-token")
        assert pending.supersedes is None


@pytest.mark.parametrize(
    ("price_state", "accepted"),
    [("OUTSTANDING", False), ("CONFIRMED", True), ("APPLIED", True), ("CANCELED", None)],
)
def test_price_change(price_state: str, accepted: bool | None) -> None:
    event, _ = _one("active", 19, price_change_state=price_state)
    assert event.renewal.price_increase_accepted is accepted
    assert event.details["price_change"]["priceChangeState"] == price_state


def test_cancel_reason_and_no_personal_data() -> None:
    event, _ = _one("canceled", 3, user="u-7")
    assert event.renewal.expiration_reason == "user_canceled"
    text = repr(event.details)
    assert "person@example.com" not in text
    assert "u-7" not in text
    assert event.details["acknowledgement_state"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"


def test_add_on_line_items_are_separate_purchases() -> None:
    add_on = {
        "productId": "extra_storage",
        "expiryTime": "2026-12-01T00:00:00Z",
        "autoRenewingPlan": {"autoRenewEnabled": True},
        "latestSuccessfulOrderId": "GPA.9",
    }
    purchase = subscription_purchase("active", now=NOW, extra_line_items=[add_on])
    events = subscription_events(17, "tok", purchase, PKG, NOW)
    assert [e.purchase_id for e in events] == ["tok", "tok|extra_storage"]
    assert events[1].transaction.product_id == "extra_storage"


def test_gone_subscription_reads_as_expired() -> None:
    events = subscription_events(13, "tok", gone_subscription(), PKG, NOW)
    assert len(events) == 1
    assert events[0].status is Status.EXPIRED
    assert events[0].transaction is None
    assert events[0].details["gone"] is True
    assert needs_acknowledgement(gone_subscription()) is False


@pytest.mark.parametrize(
    ("purchase", "needed"),
    [
        (subscription_purchase("active", now=NOW, acknowledged=False), True),
        (subscription_purchase("active", now=NOW, acknowledged=True), False),
        (subscription_purchase("canceled", now=NOW, acknowledged=False), True),
        (subscription_purchase("pending", now=NOW, acknowledged=False), False),
        (subscription_purchase("expired", now=NOW, acknowledged=False), False),
        (product_purchase(purchase_time=NOW, acknowledged=False), True),
        (product_purchase(purchase_time=NOW, acknowledged=True), False),
        (product_purchase(purchase_time=NOW, purchase_state=2), False),
        ({}, False),
    ],
)
def test_needs_acknowledgement(purchase: dict[str, object], needed: bool) -> None:
    assert needs_acknowledgement(purchase) is needed


# --- one-time products ----------------------------------------------------------------


def test_non_consumable_grants_lifetime() -> None:
    bought = NOW - timedelta(hours=2)
    [event] = product_events(
        1, "pt", product_purchase(purchase_time=bought, user="u-2"), "lifetime_unlock", NOW
    )
    assert event.status is Status.ACTIVE
    assert event.kind is EventKind.PURCHASED
    t = event.transaction
    assert (t.kind, t.expires_at, t.transaction_id) == (
        PurchaseKind.NON_CONSUMABLE,
        None,
        "GPA.3300-4444-5555-66666",
    )
    assert t.purchased_at == bought.replace(microsecond=(bought.microsecond // 1000) * 1000)
    assert event.app_user_id == "u-2"
    assert view(apply(None, event)).status is Status.ACTIVE


def test_consumable_and_test_purchase() -> None:
    [event] = product_events(
        None,
        "pt",
        product_purchase("coins", purchase_time=NOW, test_purchase=True),
        "coins",
        NOW,
        consumable_products={"coins"},
    )
    assert event.transaction.kind is PurchaseKind.CONSUMABLE
    assert event.is_sandbox is True
    assert event.details["purchase_type"] == "test"


@pytest.mark.parametrize(
    ("state", "code", "status"),
    [
        (0, 1, Status.ACTIVE),
        (2, 1, Status.PENDING),
        (1, 2, Status.PENDING),
        (1, None, Status.REVOKED),
    ],
)
def test_product_purchase_states(state: int, code: int | None, status: Status) -> None:
    bought = NOW + timedelta(hours=1)  # Google's clock ahead of this host's: no matter
    purchase = product_purchase(purchase_time=bought, purchase_state=state)
    [event] = product_events(code, "pt", purchase, "p", NOW)
    assert event.status is status
    v = view(apply(None, event))
    assert v.status is status
    assert v.revoked_at is None  # products.get gives no revocation time; the read is not one


def test_voided_full_refund_revokes_and_partial_does_not() -> None:
    full = classify(voided_notification(PKG, "tok", "GPA.1", event_time=EVENT_TIME), {PKG})
    assert full.category is Category.VOIDED
    event = voided_event(full, NOW)
    assert event is not None
    assert (event.purchase_id, event.revoked_at, event.kind) == (
        "tok",
        EVENT_TIME,
        EventKind.REFUNDED,
    )
    assert event.occurred_at == NOW
    partial = classify(
        voided_notification(PKG, "tok", "GPA.1", refund_type=2, event_time=EVENT_TIME), {PKG}
    )
    assert voided_event(partial, NOW) is None
    timeless = replace(full, event_time=None)
    assert voided_event(timeless, NOW) is None


def test_voided_after_active_state_is_revoked() -> None:
    active, _ = _one("active")
    notification = voided_notification(PKG, "tok-1", "GPA.1", event_time=EVENT_TIME)
    voided = voided_event(classify(notification, {PKG}), NOW)
    assert voided is not None
    state = apply(apply(None, active), voided)
    assert view(state).status is Status.REVOKED
    assert view(state).revoked_at == EVENT_TIME
    # ...and a later API read saying ACTIVE does not lift it (sticky).
    later, _ = _one("active")
    assert view(apply(state, later)).status is Status.REVOKED


def test_newest_read_wins_even_when_expiry_moves_back() -> None:
    """A trial read, then a renewal, then a grace read whose expiry is earlier than the
    trial's (simulated time): the view follows the newest read, not the longest expiry."""
    later = NOW + timedelta(minutes=1)
    latest = NOW + timedelta(minutes=2)
    trial = subscription_purchase(
        "active", now=NOW, offer_phase="trial", expiry=NOW + timedelta(days=7), order_id="GPA.1"
    )
    renewed = subscription_purchase(
        "active", now=NOW, expiry=NOW + timedelta(days=37), order_id="GPA.1..0"
    )
    grace = subscription_purchase(
        "grace", now=NOW, expiry=NOW + timedelta(days=3), order_id="GPA.1..0"
    )
    state = None
    for at, body, code in [(NOW, trial, 4), (later, renewed, 2), (latest, grace, 6)]:
        [event] = subscription_events(code, "tok", body, PKG, at)
        state = apply(state, event)
    v = view(state)
    assert v.status is Status.GRACE_PERIOD
    assert v.expires_at == NOW + timedelta(days=3)
    assert v.grace_period_expires_at == NOW + timedelta(days=3)
    assert v.period_type is PeriodType.NORMAL


# --- documents field by field -------------------------------------------------------------


def test_details_of_a_rich_document() -> None:
    """What a read keeps for inspection: Google's own facts under our names, no personal data."""
    doc = subscription_purchase(
        "paused",
        now=STORE_NOW,
        test_purchase=True,
        linked_token="old-token",
        offer_id="winter",
        offer_tags=["loyal"],
        order_id="GPA.7",
        price_change_state="CONFIRMED",
    )
    item = doc["lineItems"][0]
    plan = item["autoRenewingPlan"]
    plan["installmentDetails"] = {"initialCommittedPaymentsCount": 12}
    plan["priceStepUpConsentDetails"] = {"state": "CONSENT_STATE_PENDING"}
    item["deferredItemReplacement"] = {"productId": "premium_yearly"}
    [event] = subscription_events(10, "tok", doc, PKG, NOW, event_time=EVENT_TIME)
    assert event.details == {
        "package_name": PKG,
        "subscription_state": "PAUSED",
        "acknowledgement_state": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "region_code": "DE",
        "notification_type": 10,
        "notification_name": "SUBSCRIPTION_PAUSED",
        "test_purchase": True,
        "linked": True,
        "auto_resume_time": doc["pausedStateContext"]["autoResumeTime"],
        "order_id": "GPA.7",
        "base_plan_id": "monthly",
        "offer_id": "winter",
        "offer_tags": ["loyal"],
        "offer_phase": "basePrice",
        "price_change": plan["priceChangeDetails"],
        "installments": {"initialCommittedPaymentsCount": 12},
        "price_step_up_consent": {"state": "CONSENT_STATE_PENDING"},
        "deferred_item_replacement": {"productId": "premium_yearly"},
    }
    assert event.renewal is not None
    assert event.renewal.auto_renew_product_id == "premium_yearly"  # the deferred change


def test_details_of_a_plain_read() -> None:
    """A submission or reconciliation read: no notification, nothing Google did not say."""
    doc = subscription_purchase("canceled", now=STORE_NOW, order_id="GPA.8")
    [event] = subscription_events(None, "tok", doc, PKG, NOW)
    assert event.details == {
        "package_name": PKG,
        "subscription_state": "CANCELED",
        "acknowledgement_state": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "region_code": "DE",
        "cancel_reason": "user_canceled",
        "order_id": "GPA.8",
        "base_plan_id": "monthly",
        "offer_phase": "basePrice",
    }
    assert event.renewal is not None
    assert event.renewal.auto_renew_product_id is None
    assert event.renewal.price_increase_accepted is None  # no price change at all


def test_a_cancellation_of_an_unknown_kind_is_still_a_cancellation() -> None:
    doc = subscription_purchase("canceled", now=STORE_NOW)
    doc["canceledStateContext"] = {"someFutureCancellation": {}}
    [event] = subscription_events(3, "tok", doc, PKG, NOW, event_time=EVENT_TIME)
    assert event.renewal is not None
    assert event.renewal.expiration_reason == "canceled"
    assert event.details["cancel_reason"] == "canceled"


@pytest.mark.parametrize("state", ["canceled", "expired"])
def test_a_cancelled_or_expired_subscription_never_renews(state: str) -> None:
    """Whatever autoRenewEnabled still says (contract §4: cancelling stops the renewal)."""
    event, _ = _one(state, auto_renew=True)
    assert event.renewal is not None
    assert event.renewal.will_renew is False


def test_an_empty_offer_phase_falls_back_to_the_offer() -> None:
    doc = subscription_purchase("active", now=STORE_NOW, offer_phase=None, offer_id="free-trial")
    doc["lineItems"][0]["offerPhase"] = {}
    [event] = subscription_events(4, "tok", doc, PKG, NOW)
    assert event.transaction is not None
    assert event.transaction.period_type is PeriodType.TRIAL


def test_transaction_and_link_facts() -> None:
    event, doc = _one("active", user="")  # an empty obfuscated id links nobody
    assert event.app_user_id is None
    assert event.transaction is not None
    started = datetime.fromisoformat(doc["startTime"])
    assert (event.transaction.purchased_at, event.transaction.original_purchased_at) == (
        started,
        started,
    )


def test_a_document_without_line_items() -> None:
    doc = {
        "subscriptionState": "SUBSCRIPTION_STATE_EXPIRED",
        "linkedPurchaseToken": "old-token",
        "lineItems": [],
    }
    [event] = subscription_events(13, "tok", doc, PKG, NOW, event_time=EVENT_TIME)
    assert (event.purchase_id, event.supersedes, event.status) == (
        "tok",
        "old-token",
        Status.EXPIRED,
    )
    assert event.transaction is None
    del doc["subscriptionState"]
    [unknown] = subscription_events(None, "tok", doc, PKG, NOW)
    assert unknown.status is None  # no state stated: nothing to conclude
    assert "subscription_state" not in unknown.details


def test_the_base_plan_is_the_line_item_expiring_last_whatever_the_order() -> None:
    """Add-ons listed before the base plan (one of them pending, without expiry): the base
    plan keeps the token, only it replaces the linked purchase, add-ons are marked."""
    doc = subscription_purchase("active", now=STORE_NOW, linked_token="old-token")
    base = doc["lineItems"][0]
    soon = {"productId": "extra_storage", "expiryTime": "2026-11-30T00:00:00Z"}
    pending = {"productId": "extra_seats", "autoRenewingPlan": {}}  # no expiryTime yet
    doc["lineItems"] = [pending, soon, base]
    events = subscription_events(4, "tok", doc, PKG, NOW)
    assert [e.purchase_id for e in events] == ["tok", "tok|extra_storage", "tok|extra_seats"]
    assert [e.supersedes for e in events] == ["old-token", None, None]
    assert "add_on_of" not in events[0].details
    assert events[1].details["add_on_of"] == "line item of the same purchase token"


@pytest.mark.parametrize(
    ("code", "state", "status", "kind", "reason"),
    [
        (1, 0, Status.ACTIVE, EventKind.PURCHASED, None),
        (None, 0, Status.ACTIVE, EventKind.STATE_REFRESHED, None),
        (None, None, Status.ACTIVE, EventKind.STATE_REFRESHED, None),  # purchaseState left out
        (1, 2, Status.PENDING, EventKind.PURCHASED, None),
        (2, 1, Status.PENDING, EventKind.INFORMATIONAL, None),  # a pending purchase cancelled
        (None, 1, Status.REVOKED, EventKind.REVOKED, "cancelled"),  # paid, then cancelled
        (1, 1, Status.REVOKED, EventKind.REVOKED, "cancelled"),
    ],
)
def test_one_time_product_state_kind_and_reason(
    code: int | None, state: int | None, status: Status, kind: EventKind, reason: str | None
) -> None:
    purchase = product_purchase(purchase_time=STORE_NOW, purchase_state=state or 0)
    if state is None:
        del purchase["purchaseState"]
    [event] = product_events(code, "pt", purchase, "lifetime_unlock", NOW)
    assert (event.status, event.kind) == (status, kind)
    assert event.transaction is not None
    assert event.transaction.revocation_reason == reason


def test_one_time_product_facts_and_details() -> None:
    bought = datetime(2026, 11, 25, 7, 0, 0, 123000, tzinfo=UTC)
    purchase = product_purchase(purchase_time=bought, quantity=3, user="u-3") | {
        "packageName": PKG,
        "purchaseType": 1,
        "refundableQuantity": 2,
    }
    [event] = product_events(1, "pt", purchase, "lifetime_unlock", NOW)
    assert (event.store, event.purchase_id, event.app_user_id, event.is_sandbox) == (
        Store.PLAY_STORE,
        "pt",
        "u-3",
        False,
    )
    assert event.transaction is not None
    t = event.transaction
    assert (t.product_id, t.purchased_at, t.original_purchased_at, t.signed_at) == (
        "lifetime_unlock",
        bought,
        bought,
        NOW,
    )
    assert event.details == {
        "package_name": PKG,
        "order_id": "GPA.3300-4444-5555-66666",
        "purchase_state": 0,
        "consumption_state": 0,
        "acknowledgement_state": 0,
        "purchase_type": "promo",
        "quantity": 3,
        "refundable_quantity": 2,
        "region_code": "DE",
        "notification_type": 1,
    }


def test_one_time_product_with_google_defaults_left_out() -> None:
    """A sparse document (no orderId, quantity, purchaseType, purchaseState, an empty
    obfuscated account id): what is left out reads as Google's documented default."""
    purchase = product_purchase(purchase_time=STORE_NOW, user="")
    for key in ("orderId", "purchaseState", "consumptionState", "acknowledgementState"):
        del purchase[key]
    [event] = product_events(None, "pt", purchase, "lifetime_unlock", NOW)
    assert event.status is Status.ACTIVE
    assert event.app_user_id is None
    assert event.transaction is not None
    assert event.transaction.transaction_id == "pt"  # keyed by the token without an order
    [empty] = product_events(None, "pt", purchase | {"orderId": ""}, "lifetime_unlock", NOW)
    assert empty.transaction is not None
    assert empty.transaction.transaction_id == "pt"
    assert event.details == {
        "purchase_state": 0,
        "quantity": 1,
        "region_code": "DE",
    }


def test_voided_event_facts_and_what_is_not_a_voided_purchase() -> None:
    note = classify(voided_notification(PKG, "tok", "GPA.1", event_time=EVENT_TIME), {PKG})
    event = voided_event(note, NOW)
    assert event is not None
    assert (event.store, event.is_sandbox, event.transaction) == (Store.PLAY_STORE, False, None)
    assert event.details == {
        "package_name": PKG,
        "order_id": "GPA.1",
        "voided_product_type": 1,
        "refund_type": 1,
    }
    renewed = classify(subscription_notification(PKG, "tok", 2, event_time=EVENT_TIME), {PKG})
    assert voided_event(renewed, NOW) is None
    tokenless = replace(note, purchase_token=None)
    assert voided_event(tokenless, NOW) is None


def test_every_play_statement_names_its_app() -> None:
    """The package name is the app a Play purchase was bought in (issue 20)."""
    other = "com.example.app.lite"
    [sub] = subscription_events(4, "tok", subscription_purchase("active", now=NOW), other, NOW)
    assert sub.app == other
    product = product_purchase(purchase_time=NOW)
    [given] = product_events(1, "pt", product, "p", NOW, package=other)
    assert given.app == other
    [read] = product_events(1, "pt", product | {"packageName": PKG}, "p", NOW)
    assert read.app == PKG  # without the caller's package: the document's own
    voided = voided_event(
        classify(voided_notification(other, "tok", "GPA.1", event_time=EVENT_TIME), {other}), NOW
    )
    assert voided is not None
    assert voided.app == other
    listed = voided_purchase_event(
        {"purchaseToken": "tok", "voidedTimeMillis": "1764064800000"}, other, NOW
    )
    assert listed is not None
    assert listed.app == other


def priced(currency: str | None, units: str | None = None, nanos: int | None = None, **item):
    money = {"currencyCode": currency, "units": units, "nanos": nanos}
    plan = {"recurringPrice": {k: v for k, v in money.items() if v is not None}}
    return {"autoRenewingPlan": plan, **item}


@pytest.mark.parametrize(
    ("item", "price"),
    [
        (priced("AUD", "16", 990000000), Price("16.99", "AUD")),
        (priced("JPY", "1200"), Price("1200", "JPY")),
        (priced("EUR", nanos=500000000), Price("0.5", "EUR")),
        (priced("EUR", "4", 990000000, offerPhase={"freeTrial": {}}), Price("0", "EUR")),
        (priced("EUR", "4", offerPhase={"introductoryPrice": {}}), Price("4", "EUR")),
        (priced(None, "4"), None),
        (priced("EUR", "x"), None),
        ({"autoRenewingPlan": {}}, None),
        ({"prepaidPlan": {}}, None),
    ],
)
def test_play_line_item_prices_are_exact_decimals(item, price) -> None:
    assert line_item_price(item) == price


def test_a_line_items_price_and_order_reach_its_transaction() -> None:
    event, _ = _one("active", 2, order_id="GPA.1234-5678-9012-34567..3")
    assert event.transaction is not None
    assert event.transaction.price == Price("4.99", "EUR")
    assert event.transaction.order_id == "GPA.1234-5678-9012-34567..3"
    pending, _ = _one("pending", 4)
    assert pending.transaction is not None
    assert pending.transaction.order_id is None  # not paid: no order yet
    assert priced("", "4") == {
        "autoRenewingPlan": {"recurringPrice": {"currencyCode": "", "units": "4"}}
    }
    assert line_item_price(priced("", "4")) is None
