"""Support acting on the stores (issue 21): `POST /v1/customers/{id}/extend` and `/revoke`
against the fake App Store Server API and the fake Play Developer API over real HTTP (request
bodies checked field by field there). The answer says what each store accepted; the
customer's state changes only when the store says so (the re-read that follows the action),
never by assumption; Apple's and Play's own rules are refused with a clear 422."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth
from tests.e2e import google_helpers, replay_helpers
from tests.e2e.apple_helpers import scenario
from tests.e2e.google_helpers import notify

google_keys = google_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores


def claims(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def subscribed_on_apple(s) -> tuple[str, dict[str, Any]]:
    """A customer with an active Apple subscription that Apple's status API knows."""
    user = str(uuid.uuid4())
    payload = scenario(s.ca, user=user).payload("subscribe", s.clock.now)
    signed_tx = payload["data"]["signedTransactionInfo"]
    s.fake_api.add_transaction(signed_tx)
    s.fake_api.set_status(signed_tx, payload["data"].get("signedRenewalInfo"), 1)
    resp = await s.client.post("/webhooks/apple", json={"signedPayload": s.ca.sign(payload)})
    assert resp.status == 200
    return user, claims(signed_tx)


async def premium(s, user: str) -> dict[str, Any]:
    resp = await s.client.get(f"/v1/customers/{user}", headers=auth(ADMIN_KEY))
    return (await resp.json())["entitlements"]["premium"]


async def extend(s, user: str, **body: Any):
    resp = await s.client.post(f"/v1/customers/{user}/extend", json=body, headers=auth(ADMIN_KEY))
    return resp.status, await resp.json()


async def test_an_apple_extension_is_asked_and_shows_only_once_apple_confirms(stores) -> None:
    s = stores
    user, tx = await subscribed_on_apple(s)
    before = (await premium(s, user))["expires_at"]

    # Apple accepts, but its status still says the old date: nothing changes.
    status, body = await extend(s, user, days=7, reason="service_outage")
    assert status == 202, body
    assert body == {
        "requested": [
            {
                "store": "app_store",
                "purchase": tx["originalTransactionId"],
                "status": "requested",
                "detail": "Apple extended the renewal date",
            }
        ]
    }
    [granted] = s.fake_api.extensions
    assert granted.original_transaction_id == tx["originalTransactionId"]
    assert granted.body["extendByDays"] == 7
    assert granted.body["extendReasonCode"] == 3
    assert (await premium(s, user))["expires_at"] == before

    # Once Apple's status states the new date, the re-read after the action applies it.
    def apple_applies(extension) -> None:
        moved = dict(tx)
        days = extension.body["extendByDays"]
        moved["expiresDate"] = tx["expiresDate"] + days * 86_400_000
        moved["signedDate"] = ms(s.clock.now)
        s.fake_api.set_status(s.ca.sign(moved), None, 1)

    s.fake_api.on_extension = apple_applies
    s.clock.advance(minutes=1)
    status, body = await extend(s, user, days=3, reason="customer_satisfaction")
    assert status == 202, body
    after = (await premium(s, user))["expires_at"]
    assert datetime.fromisoformat(after) - datetime.fromisoformat(before) == timedelta(days=3)
    assert s.fake_api.extensions[-1].body["extendReasonCode"] == 1

    # Apple allows two extensions of a subscription in 365 days: the third is refused here.
    status, body = await extend(s, user, days=1, reason="other")
    assert (status, body["error"]["code"]) == (422, "extension_limit_reached")
    assert len(s.fake_api.extensions) == 2

    export = await (
        await s.client.get(f"/v1/customers/{user}/export", headers=auth(ADMIN_KEY))
    ).json()
    assert [a["status"] for a in export["store_actions"]] == ["requested", "requested"]
    assert [a["action"] for a in export["audit"]].count("extend") == 2


async def test_extension_rules_are_refused_before_any_store_is_asked(stores) -> None:
    s = stores
    user, _tx = await subscribed_on_apple(s)
    for body, status, code in (
        ({"days": 91, "reason": "other"}, 422, "extension_out_of_range"),
        ({"days": 0, "reason": "other"}, 422, "extension_out_of_range"),
        ({"days": 7, "reason": "because"}, 422, "invalid_reason"),
        ({"days": "7", "reason": "other"}, 400, "invalid_request"),
        ({"days": 7}, 400, "invalid_request"),
        ({"days": 7, "reason": "other", "extra": 1}, 400, "invalid_request"),
    ):
        got, answer = await extend(s, user, **body)
        assert (got, answer["error"]["code"]) == (status, code), body
    got, answer = await extend(s, "u-nobody", days=7, reason="other")
    assert (got, answer["error"]["code"]) == (422, "nothing_to_extend")
    assert s.fake_api.extensions == []
    for key in (WRITER_KEY,):
        resp = await s.client.post(
            f"/v1/customers/{user}/extend",
            json={"days": 7, "reason": "other"},
            headers=auth(key),
        )
        assert resp.status == 403


async def test_apple_refuses_what_it_refuses(stores) -> None:
    s = stores
    user, _tx = await subscribed_on_apple(s)
    s.fake_api.max_extensions_per_year = 0  # Apple counts extensions made elsewhere too
    status, body = await extend(s, user, days=7, reason="other")
    assert status == 202
    [answer] = body["requested"]
    assert answer["status"] == "refused"
    assert "4030005" in answer["detail"] or "Max" in answer["detail"]


async def test_a_play_deferral_and_revocation(stores) -> None:
    s = stores
    user = google_helpers.USER
    token = "tok-actions"
    await notify(
        s.client,
        s.fake_play,
        s.keys,
        s.clock,
        4,
        "active",
        token=token,
        user=user,
    )
    before = (await premium(s, user))["expires_at"]

    status, body = await extend(s, user, days=10, reason="service_outage")
    assert status == 202, body
    assert body["requested"] == [
        {
            "store": "play_store",
            "purchase": token,
            "status": "requested",
            "detail": "Google deferred the renewal",
        }
    ]
    [deferral] = s.fake_play.deferrals
    assert deferral["body"]["deferralContext"]["deferDuration"] == f"{10 * 86_400}s"
    after = (await premium(s, user))["expires_at"]
    assert datetime.fromisoformat(after) - datetime.fromisoformat(before) == timedelta(days=10)

    # Revocation: a subscription only with a refund; access ends once Play says so.
    url = f"/v1/customers/{user}/revoke"
    resp = await s.client.post(
        url, json={"purchase": token, "refund": "none"}, headers=auth(ADMIN_KEY)
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "refund_required")
    resp = await s.client.post(
        url, json={"purchase": "tok-unknown", "refund": "full"}, headers=auth(ADMIN_KEY)
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "purchase_not_found")
    assert s.fake_play.revocations == []
    resp = await s.client.post(
        url, json={"purchase": token, "refund": "prorated"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["requested"][0]["status"] == "requested"
    [revoked] = s.fake_play.revocations
    assert revoked["body"] == {"revocationContext": {"proratedRefund": {}}}
    assert (await premium(s, user))["active"] is False


async def test_the_app_store_cannot_revoke(stores) -> None:
    s = stores
    user, tx = await subscribed_on_apple(s)
    resp = await s.client.post(
        f"/v1/customers/{user}/revoke",
        json={"purchase": tx["originalTransactionId"], "refund": "full"},
        headers=auth(ADMIN_KEY),
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "store_cannot_revoke")
    assert (await premium(s, user))["active"] is True


async def test_only_admin_keys_may_ask_the_stores(stores) -> None:
    s = stores
    user, tx = await subscribed_on_apple(s)
    for path, body in (
        ("extend", {"days": 7, "reason": "other"}),
        ("revoke", {"purchase": tx["originalTransactionId"], "refund": "full"}),
    ):
        url = f"/v1/customers/{user}/{path}"
        assert (await s.client.post(url, json=body)).status == 401
        for headers in (auth(WRITER_KEY), auth(READER_KEY), user_auth(user)):
            assert (await s.client.post(url, json=body, headers=headers)).status == 403, path
    assert s.fake_api.extensions == []
