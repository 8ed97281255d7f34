"""Poison notifications: a verified store message whose translation raises (a translator bug,
a payload shape receiptd does not read) is journaled `rejected` with the failure's type,
answered 200 so the store stops redelivering it, logged as an error with ids only, and
visible in the customer's export. Other notifications keep flowing; outages keep their 503.

The translator is replaced (monkeypatch) by one that raises for the poison message only and
quotes the payload in its exception text, as a real `KeyError('…')` or `ValueError` would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from entitlements.errors import DatabaseUnavailable
from receipts.apple import adapter as apple_adapter
from receipts.apple.verifier import peek
from receipts.errors import MalformedPayload, StoreUnavailable
from receipts.google import reads as google_reads
from simulators.google_signer import subscription_notification
from tests.conftest import ADMIN_KEY, auth
from tests.e2e import google_helpers
from tests.e2e.apple_helpers import apple_config, scenario
from tests.e2e.google_helpers import PACKAGE, USER, customer, push, rows, sub
from tests.e2e.test_apple_webhook import apple_ca

fake_play = google_helpers.fake_play
google_keys = google_helpers.google_keys
google_client = google_helpers.google_client
__all__ = ["apple_ca"]

SECRET_IN_PAYLOAD = "payload-secret-7f3a"


async def journal(database_url: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await rows(
            database_url,
            "SELECT message_id, purchase_id, result, reason, payload IS NOT NULL AS kept "
            "FROM store_notifications ORDER BY id",
        )
    ]


async def export(client, user: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/customers/{user}/export", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    result: dict[str, Any] = await resp.json()
    return result


def raising_for(real, poison_uuid: str, exc: BaseException):
    """Apple's translator, except that it raises `exc` for the notification `poison_uuid`."""

    def translator(notification):
        if notification.notification_uuid == poison_uuid:
            raise exc
        return real(notification)

    return translator


def poisoned_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "store_notification_poisoned"]


# --- Apple -----------------------------------------------------------------------------------


@pytest.fixture
async def apple_client(make_client, config, apple_ca):
    return await make_client(apple_config(config, apple_ca[1]))


async def test_apple_translator_failure_is_journaled_rejected_and_not_retried(
    apple_client, apple_ca, clock, database_url, monkeypatch
) -> None:
    s = scenario(apple_ca[0])
    assert (await apple_client.post("/webhooks/apple", json=s.body("subscribe", clock.now))).ok
    clock.advance(days=30)
    poison = s.body("renew", clock.now)
    poison_uuid = peek(poison["signedPayload"])["notificationUUID"]
    real = apple_adapter.notification_events
    monkeypatch.setattr(
        apple_adapter,
        "notification_events",
        raising_for(real, poison_uuid, KeyError(f"{SECRET_IN_PAYLOAD} {poison['signedPayload']}")),
    )
    with capture_logs() as logs:
        resp = await apple_client.post("/webhooks/apple", json=poison)
    assert (resp.status, await resp.json()) == (200, {"status": "rejected"})
    [line] = poisoned_lines(logs)
    assert line["log_level"] == "error"
    assert line["notification_uuid"] == poison_uuid
    assert line["original_transaction_id"] == s.state.original_transaction_id
    assert line["reason"] == "translation failed: KeyError"
    text = json.dumps(logs, default=str)
    assert SECRET_IN_PAYLOAD not in text
    assert poison["signedPayload"][:40] not in text

    entries = await journal(database_url)
    assert entries[-1] == {
        "message_id": poison_uuid,
        "purchase_id": s.state.original_transaction_id,
        "result": "rejected",
        "reason": "translation failed: KeyError",
        "kept": True,  # the raw payload stays for inspection
    }
    # The redelivery is a duplicate: never translated again, never retried forever.
    resp = await apple_client.post("/webhooks/apple", json=poison)
    assert (resp.status, await resp.json()) == (200, {"status": "duplicate"})
    # Visible in the customer's export, with its verdict.
    doc = await export(apple_client, s.state.user)
    assert [(n["message_id"], n["result"], n["reason"]) for n in doc["notifications"]][-1] == (
        poison_uuid,
        "rejected",
        "translation failed: KeyError",
    )
    # Other notifications are unaffected: the same purchase and another one are processed.
    clock.advance(days=1)
    assert (await apple_client.post("/webhooks/apple", json=s.body("cancel", clock.now))).ok
    other = scenario(apple_ca[0])
    resp = await apple_client.post("/webhooks/apple", json=other.body("subscribe", clock.now))
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    assert [e["result"] for e in await journal(database_url)] == [
        "processed",
        "rejected",
        "processed",
        "processed",
    ]


async def test_apple_shape_we_do_not_read_is_rejected_with_our_message(
    apple_client, apple_ca, clock, database_url, monkeypatch
) -> None:
    """A MalformedPayload raised after verification (say a new product type) is poison too:
    before, it was a 400 that Apple retried for three days."""

    def unreadable(notification):
        raise MalformedPayload("Apple transaction has an unknown product type")

    monkeypatch.setattr(apple_adapter, "notification_events", unreadable)
    s = scenario(apple_ca[0])
    resp = await apple_client.post("/webhooks/apple", json=s.body("subscribe", clock.now))
    assert (resp.status, await resp.json()) == (200, {"status": "rejected"})
    [entry] = await journal(database_url)
    assert entry["reason"] == "unreadable: Apple transaction has an unknown product type"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (StoreUnavailable(), 503, "store_unavailable"),
        (DatabaseUnavailable(), 503, "database_unavailable"),
        (ConnectionResetError("peer"), 503, "store_unavailable"),
    ],
    ids=["store", "database", "connection"],
)
async def test_apple_outages_keep_their_503_and_store_nothing(
    apple_client, apple_ca, clock, database_url, monkeypatch, exc, status, code
) -> None:
    def outage(notification):
        raise exc

    monkeypatch.setattr(apple_adapter, "notification_events", outage)
    s = scenario(apple_ca[0])
    resp = await apple_client.post("/webhooks/apple", json=s.body("subscribe", clock.now))
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert await journal(database_url) == []


# --- Google ----------------------------------------------------------------------------------


async def test_google_translator_failure_is_journaled_rejected_and_not_retried(
    google_client, fake_play, google_keys, clock, database_url, monkeypatch
) -> None:
    poison_token = f"tok-poison-{SECRET_IN_PAYLOAD}"
    fake_play.set_subscription(PACKAGE, "tok-fine", sub(clock, "active", "tok-fine"))
    fake_play.set_subscription(PACKAGE, poison_token, sub(clock, "active", poison_token))
    real = google_reads.subscription_events

    def translator(notification_type, token, *args, **kwargs):
        if token == poison_token:
            raise ValueError(f"cannot read {poison_token}")  # quotes the token, as bugs do
        return real(notification_type, token, *args, **kwargs)

    monkeypatch.setattr(google_reads, "subscription_events", translator)
    note = subscription_notification(PACKAGE, poison_token, 4, event_time=clock.now)
    with capture_logs() as logs:
        status, body = await push(google_client, google_keys, note, "m-poison", at=clock.now)
    assert (status, body) == (200, {"status": "rejected"})
    [line] = poisoned_lines(logs)
    assert line["log_level"] == "error"
    assert line["message_id"] == "m-poison"
    assert line["reason"] == "translation failed: ValueError"
    assert "purchase_ref" in line
    assert poison_token not in json.dumps(logs, default=str)
    [entry] = await journal(database_url)
    assert entry == {
        "message_id": "m-poison",
        "purchase_id": poison_token,
        "result": "rejected",
        "reason": "translation failed: ValueError",
        "kept": True,
    }
    assert fake_play.acknowledgements == []  # nothing acted on for a message not applied
    # Pub/Sub's redelivery is a duplicate; other messages are processed.
    status, body = await push(google_client, google_keys, note, "m-poison", at=clock.now)
    assert (status, body) == (200, {"status": "duplicate"})
    fine = subscription_notification(PACKAGE, "tok-fine", 4, event_time=clock.now)
    assert await push(google_client, google_keys, fine, "m-fine", at=clock.now) == (
        200,
        {"status": "processed"},
    )
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is True


async def test_google_play_outage_keeps_its_503_whatever_the_translator(
    google_client, fake_play, google_keys, clock, database_url, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise AssertionError("never reached: the Play API is down")

    monkeypatch.setattr(google_reads, "subscription_events", broken)
    fake_play.set_subscription(PACKAGE, "tok-out", sub(clock, "active", "tok-out"))
    fake_play.fail(503, times=100)  # more than the client's retries
    note = subscription_notification(PACKAGE, "tok-out", 4, event_time=clock.now)
    status, body = await push(google_client, google_keys, note, "m-out", at=clock.now)
    assert status == 503
    assert body["error"]["code"] == "store_unavailable"
    assert await journal(database_url) == []
