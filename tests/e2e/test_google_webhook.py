"""POST /webhooks/google end to end: pushes signed by a test OIDC key whose certificate the
fake Play API serves, purchase state read from the fake Play API over HTTP, applied to real
PostgreSQL/Redis and read back through GET /v1/customers/{id}."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from simulators.google_signer import (
    console_test_notification,
    push_envelope,
    subscription_notification,
    voided_notification,
)
from tests.e2e import google_helpers
from tests.e2e.google_helpers import (
    AUDIENCE,
    MONTHLY,
    PACKAGE,
    PUSH_EMAIL,
    USER,
    YEARLY,
    customer,
    iso,
    notify,
    push,
    rows,
    sub,
)

NOW = "<the clock's now>"  # expected value: the time of the last notification

# Fixtures shared with the purchase tests.
google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play
google_client = google_helpers.google_client


# name → (steps of (notification code, subscriptionState, purchase kwargs), expected fields)
LIFECYCLES: dict[str, tuple[list[tuple[int, str, dict[str, Any]]], dict[str, Any]]] = {
    "purchased": (
        [(4, "active", {})],
        {"status": "active", "active": True, "will_renew": True, "period_type": "normal"},
    ),
    "purchased-trial": ([(4, "active", {"offer_phase": "trial"})], {"period_type": "trial"}),
    "purchased-intro": ([(4, "active", {"offer_phase": "intro"})], {"period_type": "intro"}),
    "purchased-test": ([(4, "active", {"test_purchase": True})], {"is_sandbox": True}),
    "recovered": (
        [(4, "active", {}), (6, "grace", {}), (1, "active", {})],
        {"status": "active", "active": True, "billing_issue_detected_at": None},
    ),
    "renewed": ([(4, "active", {}), (2, "active", {})], {"status": "active", "active": True}),
    "canceled": (
        [(4, "active", {}), (3, "canceled", {})],
        {"status": "active", "active": True, "will_renew": False, "unsubscribe_detected_at": NOW},
    ),
    "on-hold": (
        [(4, "active", {}), (5, "on_hold", {})],
        {"status": "on_hold", "active": False, "billing_issue_detected_at": NOW},
    ),
    "grace": (
        [(4, "active", {}), (6, "grace", {})],
        {"status": "grace_period", "active": True, "billing_issue_detected_at": NOW},
    ),
    "restarted": (
        [(4, "active", {}), (3, "canceled", {}), (7, "active", {})],
        {"status": "active", "will_renew": True, "unsubscribe_detected_at": None},
    ),
    "price-change-confirmed": (
        [(4, "active", {}), (8, "active", {"price_change_state": "CONFIRMED"})],
        {"status": "active", "active": True},
    ),
    "deferred": ([(4, "active", {}), (9, "active", {})], {"status": "active", "active": True}),
    "paused": ([(4, "active", {}), (10, "paused", {})], {"status": "paused", "active": False}),
    "pause-schedule-changed": ([(4, "active", {}), (11, "active", {})], {"status": "active"}),
    "revoked": (
        [(4, "active", {}), (12, "expired", {})],
        {"status": "revoked", "active": False, "revoked_at": NOW},
    ),
    "expired": (
        [(4, "active", {}), (13, "expired", {})],
        {"status": "expired", "active": False, "will_renew": False},
    ),
    "items-changed": ([(4, "active", {}), (17, "active", {})], {"status": "active"}),
    "cancellation-scheduled": (
        [(4, "active", {}), (18, "canceled", {})],
        {"status": "active", "active": True, "will_renew": False},
    ),
    "price-change-updated": (
        [(4, "active", {}), (19, "active", {"price_change_state": "OUTSTANDING"})],
        {"status": "active", "active": True},
    ),
    "price-step-up-consent": ([(4, "active", {}), (22, "active", {})], {"status": "active"}),
    "pending": ([(4, "pending", {})], None),
    "pending-canceled": ([(4, "pending", {}), (20, "pending_canceled", {})], None),
}


async def test_subscription_lifecycles(google_client, fake_play, google_keys, clock) -> None:
    # One app for every lifecycle (each with its own user and token): an app per case
    # would cost more in set-up than the cases themselves.
    for name, (steps, expected) in sorted(LIFECYCLES.items()):
        await _check_lifecycle(google_client, fake_play, google_keys, clock, name, steps, expected)


async def _check_lifecycle(client, fake, keys, clock, name, steps, expected) -> None:
    user, token = f"u-{name}", f"tok-{name}"
    purchase: dict[str, Any] = {}
    for code, state, kw in steps:
        clock.advance(hours=1)
        purchase = sub(clock, state, token, **(kw | {"user": user}))
        fake.set_subscription(PACKAGE, token, purchase)
        note = subscription_notification(PACKAGE, token, code, event_time=clock.now)
        body = await push(client, keys, note, at=clock.now)
        assert body == (200, {"status": "processed"}), (name, code)
    got = await customer(client, user)
    if expected is None:  # never paid: never an entitlement
        assert got["entitlements"] == {}, name
        return
    premium = got["entitlements"]["premium"]
    expiry = purchase["lineItems"][0]["expiryTime"].replace(".000", "")
    for field, value in expected.items():
        want = iso(clock.now) if value == NOW else value
        assert premium[field] == want, (name, field, premium)
    assert premium["store"] == "play_store", name
    assert premium["product_id"] == MONTHLY, name
    assert premium["expires_at"] == expiry, name
    assert premium["grace_period_expires_at"] == (expiry if name == "grace" else None), name
    assert premium["is_sandbox"] is (name == "purchased-test"), name
    [subscription] = got["subscriptions"]
    assert subscription["purchase_token"] == token, name


async def test_every_notification_type_and_state_is_covered() -> None:
    codes = {code for steps, _ in LIFECYCLES.values() for code, _, _ in steps}
    states = {state for steps, _ in LIFECYCLES.values() for _, state, _ in steps}
    assert codes == {*range(1, 14), 17, 18, 19, 20, 22}
    assert states == {
        "active",
        "canceled",
        "grace",
        "on_hold",
        "paused",
        "expired",
        "pending",
        "pending_canceled",
    }


async def test_grace_then_on_hold_then_expired_read_back(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active")
    clock.advance(days=29)
    await notify(google_client, fake_play, google_keys, clock, 6, "grace")
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert premium["grace_period_expires_at"] == iso(clock.now + timedelta(days=3))
    clock.advance(days=4)  # grace over: no access even before the next notification
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("grace_period", False)
    await notify(google_client, fake_play, google_keys, clock, 5, "on_hold")
    clock.advance(days=30)
    await notify(google_client, fake_play, google_keys, clock, 13, "expired")
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("expired", False)


async def test_revoked_revokes_even_while_the_api_says_active(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active")
    clock.advance(hours=2)
    await notify(google_client, fake_play, google_keys, clock, 12, "active")
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["active"], premium["revoked_at"]) == (
        "revoked",
        False,
        iso(clock.now),
    )
    clock.advance(hours=1)  # a late renewal read does not bring access back
    await notify(google_client, fake_play, google_keys, clock, 2, "active")
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is False


async def test_voided_subscription_revokes_whatever_the_api_says(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active")
    clock.advance(hours=1)
    voided = voided_notification(PACKAGE, "tok-a", "GPA.1", event_time=clock.now, product_type=1)
    assert await push(google_client, google_keys, voided, at=clock.now) == (
        200,
        {"status": "processed"},
    )
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["revoked_at"]) == ("revoked", iso(clock.now))


async def test_voided_during_a_play_api_outage_still_revokes(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active")
    fake_play.deny = True  # every Play API call now fails
    voided = voided_notification(PACKAGE, "tok-a", "GPA.1", event_time=clock.now, product_type=1)
    assert await push(google_client, google_keys, voided, at=clock.now) == (
        200,
        {"status": "processed"},
    )
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is False


async def test_upgrade_chain_supersedes_the_old_token(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", "tok-a")
    clock.advance(days=3)
    await notify(
        google_client, fake_play, google_keys, clock, 4, "active", "tok-b",
        product_id=YEARLY, linked_token="tok-a", acknowledged=False,
    )  # fmt: skip
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["product_id"], premium["active"]) == (YEARLY, True)
    # Play may still say the old token is active; a late event on it changes nothing.
    clock.advance(hours=1)
    await notify(google_client, fake_play, google_keys, clock, 2, "active", "tok-a")
    got = await customer(google_client, USER)
    premium = got["entitlements"]["premium"]
    assert (premium["product_id"], premium["active"]) == (YEARLY, True)
    [old] = await rows(database_url, "SELECT superseded FROM purchases WHERE purchase_id='tok-a'")
    assert old["superseded"] is True
    # The old token expiring or being revoked does not remove the new token's access.
    clock.advance(hours=1)
    await notify(google_client, fake_play, google_keys, clock, 13, "expired", "tok-a")
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is True
    assert [a["token"] for a in fake_play.acknowledgements] == ["tok-b"]


# --- rejected and odd deliveries ----------------------------------------------------------


AUTH_CASES = (
    "no_header",
    "basic_scheme",
    "garbage",
    "wrong_audience",
    "wrong_signer",
    "unknown_kid",
    "wrong_email",
    "email_not_verified",
    "wrong_issuer",
    "expired",
)


async def test_unauthenticated_pushes_are_401_and_store_nothing(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    fake_play.set_subscription(PACKAGE, "tok-a", sub(clock, "active"))
    sign = google_keys.sign_push_token
    sa_key = google_keys.service_account
    tokens = {
        "garbage": lambda: "not.a.jwt",
        "wrong_audience": lambda: sign("https://elsewhere.example/", PUSH_EMAIL),
        "wrong_signer": lambda: sign(AUDIENCE, PUSH_EMAIL, key=sa_key, kid=google_keys.oidc.kid),
        "unknown_kid": lambda: sign(AUDIENCE, PUSH_EMAIL, key=sa_key),
        "wrong_email": lambda: sign(AUDIENCE, "someone@example.iam.gserviceaccount.com"),
        "email_not_verified": lambda: sign(AUDIENCE, PUSH_EMAIL, email_verified=False),
        "wrong_issuer": lambda: sign(AUDIENCE, PUSH_EMAIL, issuer="https://evil.example"),
        "expired": lambda: sign(AUDIENCE, PUSH_EMAIL, expires_in=-3600),
    }
    body = push_envelope(_note(clock.now), "m-auth", publish_time=clock.now)
    for case in AUTH_CASES:
        bearer = tokens[case]() if case in tokens else None
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if case == "basic_scheme":
            headers["Authorization"] = "Basic dXNlcjpwYXNz"
        resp = await google_client.post("/webhooks/google", json=body, headers=headers)
        assert resp.status == 401, case
        error = (await resp.json())["error"]
        assert error["code"] == "unauthenticated", case
        assert bearer is None or bearer not in error["message"]  # never the token
    assert await rows(database_url, "SELECT * FROM store_notifications") == []
    assert list(fake_play.api_requests()) == []
    assert (await customer(google_client, USER))["entitlements"] == {}
    # The same push, properly signed, goes through: the cases above failed for their reason.
    assert await push(google_client, google_keys, _note(clock.now), "m-auth", at=clock.now) == (
        200,
        {"status": "processed"},
    )


def _note(at: datetime) -> dict[str, Any]:
    return subscription_notification(PACKAGE, "tok-a", 4, event_time=at)


def _raw_envelope(data: str) -> dict[str, Any]:
    return {"message": {"data": data, "messageId": "m-poison"}, "subscription": "s"}


def _poison_bodies(at: datetime) -> dict[str, tuple[dict[str, Any], str | None]]:
    def env(data: dict[str, Any] | bytes, case: str) -> dict[str, Any]:
        return push_envelope(data, f"m-{case}", publish_time=at)

    no_token = _note(at) | {"subscriptionNotification": {"notificationType": 4}}
    return {
        "bad_base64": (_raw_envelope("%%%% not base64 %%%%"), None),
        "bad_json": (env(b"{not json", "bad_json"), "bad JSON"),
        "not_object": (env(b"[1, 2]", "not_object"), "not a JSON object"),
        "no_data": ({"message": {"messageId": "m-no_data"}}, "no data"),
        "unknown_package": (
            env(
                subscription_notification("com.other.app", "tok-a", 4, event_time=at),
                "unknown_package",
            ),
            "unknown package",
        ),
        "no_known_block": (
            env({"packageName": PACKAGE, "version": "1.0"}, "no_known_block"),
            "no known notification block",
        ),
        "no_token": (env(no_token, "no_token"), "no purchaseToken"),
    }


async def test_poison_is_journaled_and_answered_rejected(
    google_client, fake_play, google_keys, clock, database_url
) -> None:
    headers = {"Authorization": f"Bearer {google_keys.sign_push_token(AUDIENCE, PUSH_EMAIL)}"}
    poison = _poison_bodies(clock.now)
    for case, (body, _) in poison.items():
        resp = await google_client.post("/webhooks/google", json=body, headers=headers)
        assert (resp.status, await resp.json()) == (200, {"status": "rejected"}), case
        # Pub/Sub redelivering the same poison is a duplicate, not a second row.
        resp = await google_client.post("/webhooks/google", json=body, headers=headers)
        assert (resp.status, await resp.json()) == (200, {"status": "duplicate"}), case
    journal = await rows(database_url, "SELECT * FROM store_notifications ORDER BY id")
    assert len(journal) == len(poison)
    for row, (case, (body, reason)) in zip(journal, poison.items(), strict=True):
        assert (row["store"], row["result"]) == ("play_store", "rejected"), case
        assert row["message_id"] == body["message"]["messageId"]
        if reason is not None:
            assert row["reason"] == reason, case
        assert json.loads(row["payload"]) == body
    assert list(fake_play.api_requests()) == []


async def test_non_envelopes_are_400_and_store_nothing(
    google_client, google_keys, database_url
) -> None:
    headers = {
        "Authorization": f"Bearer {google_keys.sign_push_token(AUDIENCE, PUSH_EMAIL)}",
        "Content-Type": "application/json",
    }
    for body in (b"not json", b"[]", b'{"message": {}}', b'{"message": "x"}', b'{"m": 1}'):
        resp = await google_client.post("/webhooks/google", data=body, headers=headers)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == "malformed_payload"
    assert await rows(database_url, "SELECT * FROM store_notifications") == []


async def test_test_notification_and_refund_review_are_ignored_and_journaled(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    review = {
        "version": "1.0",
        "packageName": PACKAGE,
        "eventTimeMillis": str(int(clock.now.timestamp() * 1000)),
        "pendingRefundReviewNotification": {"pendingRefundToken": "r-1", "orderId": "GPA.9"},
    }
    for note in (console_test_notification(PACKAGE, event_time=clock.now), review):
        assert await push(google_client, google_keys, note, at=clock.now) == (
            200,
            {"status": "ignored"},
        )
    journal = await rows(database_url, "SELECT * FROM store_notifications ORDER BY id")
    assert [(r["notification_type"], r["result"]) for r in journal] == [
        ("TEST", "ignored"),
        ("PENDING_REFUND_REVIEW", "ignored"),
    ]
    assert list(fake_play.api_requests()) == []


async def test_unknown_purchase_token_is_rejected(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    note = subscription_notification(PACKAGE, "tok-unknown", 4, event_time=clock.now)
    assert await push(google_client, google_keys, note, at=clock.now) == (
        200,
        {"status": "rejected"},
    )
    [row] = await rows(database_url, "SELECT * FROM store_notifications")
    assert (row["result"], row["reason"]) == ("rejected", "purchase not found")


async def test_duplicate_message_id_does_not_call_the_play_api_again(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    fake_play.set_subscription(PACKAGE, "tok-a", sub(clock, "active"))
    note = _note(clock.now)
    first = await push(google_client, google_keys, note, "m-dup", at=clock.now)
    assert first == (200, {"status": "processed"})
    calls = len(list(fake_play.api_requests()))
    again = await push(google_client, google_keys, note, "m-dup", at=clock.now)
    assert again == (200, {"status": "duplicate"})
    assert len(list(fake_play.api_requests())) == calls
    assert len(await rows(database_url, "SELECT * FROM store_notifications")) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(500, "store_unavailable"), (403, "store_access_denied")]
)
async def test_play_api_outage_is_503_nothing_stored_and_redelivery_processed(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
    status,
    code,
) -> None:
    fake_play.set_subscription(PACKAGE, "tok-a", sub(clock, "active"))
    fake_play.fail(status, times=4)  # every attempt of the client's retries
    envelope = push_envelope(_note(clock.now), "m-outage", publish_time=clock.now)
    headers = {"Authorization": f"Bearer {google_keys.sign_push_token(AUDIENCE, PUSH_EMAIL)}"}
    resp = await google_client.post("/webhooks/google", json=envelope, headers=headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == code
    assert await rows(database_url, "SELECT * FROM store_notifications") == []
    assert await rows(database_url, "SELECT * FROM purchases") == []
    fake_play.failures.clear()
    resp = await google_client.post("/webhooks/google", json=envelope, headers=headers)
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is True


async def test_store_not_configured_is_404(client) -> None:
    resp = await client.post("/webhooks/google", json=_raw_envelope("e30="))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "store_not_configured"


async def test_the_canonical_log_line_carries_ids_not_tokens(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    from structlog.testing import capture_logs

    secret_token = "tok-" + "s3cr3t" * 10
    fake_play.set_subscription(PACKAGE, secret_token, sub(clock, "active", acknowledged=False))
    with capture_logs() as logs:
        note = subscription_notification(PACKAGE, secret_token, 4, event_time=clock.now)
        await push(google_client, google_keys, note, "m-log", at=clock.now)
    [line] = [e for e in logs if e["event"] == "google_notification"]
    assert line["message_id"] == "m-log"
    assert line["result"] == "processed"
    assert line["notification_type"] == 4
    assert "s3cr3t" not in repr(logs)
    assert base64.b64encode(secret_token.encode()).decode()[:20] not in repr(logs)
