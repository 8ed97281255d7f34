"""Pub/Sub push envelopes and DeveloperNotifications: parse_push and classify."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from receipts.errors import MalformedPayload
from receipts.google.notifications import parse_rfc3339
from receipts.google.translate import Category, classify, parse_push
from simulators.google_signer import (
    console_test_notification,
    one_time_notification,
    push_envelope,
    subscription_notification,
    voided_notification,
)

PKG = "com.example.app"
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a fixed instant: nothing here reads a clock


def _body(envelope: dict[str, object]) -> bytes:
    return json.dumps(envelope).encode()


def test_real_envelope_with_both_spellings() -> None:
    note = subscription_notification(PKG, "tok-1", 4, event_time=AT)
    at = datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    msg = parse_push(_body(push_envelope(note, "m-1", publish_time=at)))
    assert msg.message_id == "m-1"
    assert msg.publish_time == at
    assert msg.subscription == "projects/receiptd-demo/subscriptions/play-rtdn"
    assert msg.notification == note
    assert msg.poison_reason is None


@pytest.mark.parametrize("key", ["messageId", "message_id"])
def test_either_id_spelling_alone(key: str) -> None:
    data = base64.b64encode(b'{"packageName": "x"}').decode()
    msg = parse_push(_body({"message": {key: "m-9", "data": data}}))
    assert msg.message_id == "m-9"
    assert msg.notification == {"packageName": "x"}
    assert msg.publish_time is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"subscription": "s"}',
        b'{"message": "text"}',
        b'{"message": {"data": "e30="}}',
        b'{"message": {"messageId": 12, "data": "e30="}}',
        b'{"message": {"messageId": "", "data": "e30="}}',
    ],
)
def test_not_an_envelope_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        parse_push(body)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no data"),
        ("", "no data"),
        ("%%%not base64%%%", "bad base64"),
        (base64.b64encode(b"{not json").decode(), "bad JSON"),
        (base64.b64encode(b"\xff\xfe\xfd").decode(), "bad JSON"),
        (base64.b64encode(b"[1, 2]").decode(), "not a JSON object"),
        (base64.b64encode(b'"text"').decode(), "not a JSON object"),
    ],
)
def test_poison_is_returned_not_raised(data: str | None, reason: str) -> None:
    message: dict[str, object] = {"messageId": "m-2"}
    if data is not None:
        message["data"] = data
    msg = parse_push(_body({"message": message, "subscription": "s"}))
    assert msg.message_id == "m-2"
    assert msg.notification is None
    assert msg.poison_reason == reason


def test_urlsafe_base64_is_accepted() -> None:
    raw = json.dumps({"packageName": PKG, "k": "??>>"}).encode()
    data = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    msg = parse_push(_body({"message": {"messageId": "m", "data": data}}))
    assert msg.notification == {"packageName": PKG, "k": "??>>"}


def test_nanosecond_publish_time() -> None:
    assert parse_rfc3339("2026-11-25T10:00:00.123456789Z") == datetime(
        2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_rfc3339("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_rfc3339("yesterday") is None


def test_classify_subscription_with_legacy_subscription_id() -> None:
    note = subscription_notification(
        PKG, "tok", 12, event_time=AT, subscription_id="premium_monthly"
    )
    c = classify(note, {PKG})
    assert c.category is Category.SUBSCRIPTION
    assert (c.notification_type, c.purchase_token, c.product_id) == (12, "tok", "premium_monthly")
    assert c.type_name == "SUBSCRIPTION_REVOKED"
    assert c.event_time is not None


def test_classify_string_notification_type() -> None:
    note = subscription_notification(PKG, "tok", 2, event_time=AT)
    note["subscriptionNotification"]["notificationType"] = "2"
    assert classify(note, {PKG}).notification_type == 2


def test_classify_one_time_voided_test_and_refund_review() -> None:
    one = classify(one_time_notification(PKG, "t1", "coins_100", 2, event_time=AT), {PKG})
    assert (one.category, one.product_id, one.notification_type) == (
        Category.ONE_TIME,
        "coins_100",
        2,
    )
    voided_note = voided_notification(
        PKG, "t2", "GPA.1", event_time=AT, product_type=2, refund_type=2
    )
    voided = classify(voided_note, [PKG])
    assert voided.category is Category.VOIDED
    assert (voided.order_id, voided.voided_product_type, voided.refund_type) == ("GPA.1", 2, 2)
    assert classify(console_test_notification(PKG, event_time=AT), {PKG}).category is Category.TEST
    review = {
        "version": "1.0",
        "packageName": PKG,
        "eventTimeMillis": "1700000000000",
        "pendingRefundReviewNotification": {"pendingRefundToken": "r", "orderId": "GPA.2"},
    }
    c = classify(review, {PKG})
    assert (c.category, c.purchase_token, c.order_id) == (
        Category.PENDING_REFUND_REVIEW,
        "r",
        "GPA.2",
    )
    assert c.event_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)


@pytest.mark.parametrize(
    ("notification", "reason"),
    [
        (subscription_notification("com.other.app", "t", 4, event_time=AT), "unknown package"),
        ({"version": "1.0"}, "no packageName"),
        ({"packageName": PKG}, "no known notification block"),
        (
            {"packageName": PKG, "subscriptionNotification": {"notificationType": 4}},
            "no purchaseToken",
        ),
        (
            {"packageName": PKG, "subscriptionNotification": {"purchaseToken": "x" * 5000}},
            "no purchaseToken",
        ),
        (
            {"packageName": PKG, "oneTimeProductNotification": {"purchaseToken": "t"}},
            "no purchaseToken or sku",
        ),
        ({"packageName": PKG, "voidedPurchaseNotification": {}}, "no purchaseToken"),
    ],
)
def test_unusable_notifications_are_poison(notification: dict[str, object], reason: str) -> None:
    c = classify(notification, {PKG})
    assert c.category is Category.POISON
    assert c.poison_reason == reason
