"""The pure rules of refund requests (entitlements/refunds.py): the request a statement opens,
the share of the period used, when to send and retry, and Apple's body."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from entitlements import refunds
from entitlements.model import EventKind, PurchaseKind, Store, StoreEvent, TransactionFacts

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def event(kind: EventKind = EventKind.CONSUMPTION_REQUEST, **details: str) -> StoreEvent:
    tx = TransactionFacts(
        transaction_id="2000000000000002",
        product_id="premium.monthly",
        kind=PurchaseKind.SUBSCRIPTION,
        purchased_at=T0,
        signed_at=T0 + timedelta(days=10),
        expires_at=T0 + timedelta(days=30),
    )
    return StoreEvent(
        store=Store.APP_STORE,
        purchase_id="2000000000000001",
        kind=kind,
        occurred_at=T0 + timedelta(days=10),
        is_sandbox=True,
        transaction=tx,
        environment="Sandbox",
        app="com.example.app",
        details={"notification_uuid": "n-1", "consumption_request_reason": "LEGAL", **details},
    )


def test_a_consumption_request_opens_a_request_due_in_12_hours() -> None:
    found = refunds.opened_by(event())
    assert found == refunds.RefundRequest(
        purchase_id="2000000000000001",
        transaction_id="2000000000000002",
        product_id="premium.monthly",
        notification_id="n-1",
        requested_at=T0 + timedelta(days=10),
        deadline=T0 + timedelta(days=10, hours=12),
        environment="Sandbox",
        reason="LEGAL",
        app="com.example.app",
        consumption_percentage=33_333,
    )


def test_other_statements_open_nothing() -> None:
    assert refunds.opened_by(event(EventKind.REFUNDED)) is None
    no_id = event()
    no_id.details.pop("notification_uuid")
    assert refunds.opened_by(no_id) is None


@pytest.mark.parametrize(
    ("at_day", "expected"), [(-1, 0), (0, 0), (15, 50_000), (30, 100_000), (31, 100_000)]
)
def test_consumption_percentage_is_the_share_of_the_period_passed(at_day, expected) -> None:
    end = T0 + timedelta(days=30)
    at = T0 + timedelta(days=at_day)
    assert refunds.consumption_percentage(PurchaseKind.SUBSCRIPTION, T0, end, at) == expected


def test_consumption_percentage_unknown_without_a_period() -> None:
    end = T0 + timedelta(days=30)
    assert refunds.consumption_percentage(PurchaseKind.CONSUMABLE, T0, end, T0) is None
    assert refunds.consumption_percentage(PurchaseKind.SUBSCRIPTION, None, end, T0) is None
    assert refunds.consumption_percentage(PurchaseKind.SUBSCRIPTION, T0, None, T0) is None
    assert refunds.consumption_percentage(PurchaseKind.SUBSCRIPTION, T0, T0, T0) is None


def test_first_attempt_waits_the_delay_but_never_past_the_margin() -> None:
    deadline = T0 + timedelta(hours=12)
    assert refunds.first_attempt(T0, deadline, timedelta(0)) == T0
    assert refunds.first_attempt(T0, deadline, timedelta(hours=1)) == T0 + timedelta(hours=1)
    late = refunds.first_attempt(T0, deadline, timedelta(hours=12))
    assert late == deadline - timedelta(minutes=5)


def test_retries_back_off_to_half_an_hour() -> None:
    waits = [refunds.retry_after(n).total_seconds() for n in (0, 1, 2, 3, 6, 7, 20)]
    assert waits == [30, 30, 60, 120, 960, 1800, 1800]


def test_a_send_may_start_until_five_minutes_before_the_deadline() -> None:
    deadline = T0 + timedelta(hours=12)
    assert refunds.may_send(deadline - timedelta(minutes=5, seconds=1), deadline)
    assert not refunds.may_send(deadline - timedelta(minutes=5), deadline)


def test_the_body_apple_receives() -> None:
    assert refunds.consumption_body(
        consented=True,
        sample_content_provided=False,
        preference="grant_prorated",
        consumption_percentage=12_345,
    ) == {
        "customerConsented": True,
        "sampleContentProvided": False,
        "deliveryStatus": "DELIVERED",
        "consumptionPercentage": 12_345,
        "refundPreference": "GRANT_PRORATED",
    }
    assert refunds.consumption_body(
        consented=True, sample_content_provided=True, preference="none", consumption_percentage=None
    ) == {"customerConsented": True, "sampleContentProvided": True, "deliveryStatus": "DELIVERED"}
    for preference, apple in (("decline", "DECLINE"), ("grant_full", "GRANT_FULL")):
        body = refunds.consumption_body(
            consented=True,
            sample_content_provided=True,
            preference=preference,
            consumption_percentage=0,
        )
        assert body is not None
        assert (body["refundPreference"], body["consumptionPercentage"]) == (apple, 0)


def test_nothing_is_sent_without_consent() -> None:
    assert (
        refunds.consumption_body(
            consented=False,
            sample_content_provided=True,
            preference="decline",
            consumption_percentage=1,
        )
        is None
    )


def test_decisions() -> None:
    assert refunds.DECISIONS == {
        EventKind.REFUNDED: "refunded",
        EventKind.REFUND_DECLINED: "declined",
    }
    assert set(refunds.OPEN) == {"pending", "sent", "failed", "skipped"}


@pytest.mark.parametrize(
    ("environment", "sandbox", "expected"),
    [("Sandbox", False, "Sandbox"), (None, True, "Sandbox"), (None, False, "Production")],
)
def test_the_environment_is_the_statements_or_follows_its_sandbox_flag(
    environment, sandbox, expected
) -> None:
    found = refunds.opened_by(replace(event(), environment=environment, is_sandbox=sandbox))
    assert found is not None
    assert found.environment == expected
