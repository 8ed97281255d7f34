"""Refund requests answered (issue 21): Apple's CONSUMPTION_REQUEST through the webhook, the
request row and its change-feed event, consumption information sent once to the fake App
Store Server API (real HTTP, bodies checked field by field there) before the deadline —
across a restart and with two workers —, nothing sent about a customer without consent, the
preference changed while pending, retries, the deadline, and the store's decision closing it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.keys import REFUND_ANSWERS
from simulators.apple_ca import TestCA
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import apple_config, scenario
from tests.e2e.replay_helpers import ISSUER_ID, KEY_ID
from tests.e2e.test_console_http import page, sign_in

fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key


@pytest.fixture
def answering_config(config, fake_api, replay_ca, replay_api_key) -> dict[str, Any]:
    return apple_config(
        config,
        replay_ca[1],
        issuer_id=ISSUER_ID,
        key_id=KEY_ID,
        private_key_file=str(replay_api_key[1]),
        api_base_url=fake_api.url,
        refund_requests={"answer": True},
    )


async def started(make_client, cfg: dict[str, Any]):
    """The app with its sending loop stopped: the test runs the passes itself."""
    client = await make_client(cfg)
    await client.app[REFUND_ANSWERS].stop()
    return client


@pytest.fixture
async def app(make_client, answering_config):
    return await started(make_client, answering_config)


class Customer:
    """One subscriber's Apple lifecycle, its notifications sent to the app."""

    def __init__(self, ca: TestCA, fake_api, user: str | None = None) -> None:
        self.user = user or str(uuid.uuid4())  # Apple links by appAccountToken (a UUID)
        self.scenario = scenario(ca, user=self.user)
        self.ca = ca
        self.fake_api = fake_api
        self.transaction: dict[str, Any] = {}

    async def notify(self, client, event: str, now: datetime) -> dict[str, Any]:
        payload = self.scenario.payload(event, now)
        signed_tx = payload["data"].get("signedTransactionInfo")
        if signed_tx:
            self.fake_api.add_transaction(signed_tx)  # Apple knows it (consumption answers)
            self.transaction = _claims(signed_tx)
        resp = await client.post("/webhooks/apple", json={"signedPayload": self.ca.sign(payload)})
        body = await resp.json()
        assert resp.status == 200, body
        return body


def _claims(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def requests(client, status: str | None = None) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    resp = await client.get(f"/v1/refund-requests{query}", headers=auth(ADMIN_KEY))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["refund_requests"]


async def consent(client, user: str, given: bool = True) -> None:
    resp = await client.put(
        f"/v1/customers/{user}/consent", json={"consumption_data": given}, headers=user_auth(user)
    )
    assert resp.status == 200, await resp.text()


async def requested(client, clock, ca, fake_api, *, consented: bool = True) -> Customer:
    """A subscriber 10 days into a 30-day period who asked Apple for a refund just now."""
    [who] = await many_requested(client, clock, ca, fake_api, 1, consented=consented)
    return who


async def many_requested(
    client, clock, ca, fake_api, count: int, *, consented: bool = True
) -> list[Customer]:
    """`count` subscribers who subscribed together and asked for refunds 10 days later."""
    who = [Customer(ca, fake_api) for _ in range(count)]
    for one in who:
        await one.notify(client, "subscribe", clock.now)
        if consented:
            await consent(client, one.user)
    clock.advance(days=10)
    for one in who:
        assert await one.notify(client, "consumption-request", clock.now) == {"status": "processed"}
    return who


async def test_a_consumption_request_is_stored_and_answered_once(
    app, clock, replay_ca, fake_api
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    [pending] = await requests(app, "pending")
    tx = who.transaction
    assert pending["app_user_id"] == who.user
    assert pending["store"] == "app_store"
    assert pending["transaction_id"] == tx["transactionId"]
    assert pending["product_id"] == tx["productId"]
    assert pending["reason"] == "UNINTENDED_PURCHASE"
    assert pending["preference"] == "decline"
    asked = datetime.fromisoformat(pending["requested_at"])
    assert asked == clock.now.replace(microsecond=asked.microsecond)
    assert datetime.fromisoformat(pending["deadline"]) - asked == timedelta(hours=12)
    # The request is a change-feed event of its customer, though no entitlement changed.
    feed = await (await app.get("/v1/events", headers=auth(READER_KEY))).json()
    assert [e["type"] for e in feed["events"] if e["app_user_id"] == who.user][-1] == (
        "consumption_request"
    )

    report = await app.app[REFUND_ANSWERS].run_once()
    assert report.sent == 1
    start, end = tx["purchaseDate"], tx["expiresDate"]
    used = round((int(asked.timestamp() * 1000) - start) / (end - start) * 100_000)
    assert fake_api.consumption_sent == [
        (
            tx["transactionId"],
            {
                "customerConsented": True,
                "sampleContentProvided": True,
                "deliveryStatus": "DELIVERED",
                "consumptionPercentage": used,
                "refundPreference": "DECLINE",
            },
        )
    ]
    assert 30_000 < used < 37_000  # 10 of 30 days
    [sent] = await requests(app, "sent")
    assert sent["id"] == pending["id"]
    assert sent["sent"] == fake_api.consumption_sent[0][1]
    # Sent once: later passes find nothing to send; the same notification again is a duplicate.
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0
    assert len(fake_api.consumption_sent) == 1
    # Apple's decision closes it.
    clock.advance(hours=2)
    await who.notify(app, "refund", clock.now)
    [closed] = await requests(app, "refunded")
    assert closed["id"] == pending["id"]
    assert await requests(app, "pending,sent") == []


async def test_a_declined_refund_closes_the_request(app, clock, replay_ca, fake_api) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    await app.app[REFUND_ANSWERS].run_once()
    await who.notify(app, "refund-declined", clock.now + timedelta(hours=1))
    [closed] = await requests(app)
    assert closed["status"] == "declined"


async def test_nothing_is_sent_about_a_customer_without_consent(
    app, clock, replay_ca, fake_api
) -> None:
    withdrawn, never = Customer(replay_ca[0], fake_api), Customer(replay_ca[0], fake_api)
    for who in (withdrawn, never):
        await who.notify(app, "subscribe", clock.now)
    await consent(app, withdrawn.user)
    await consent(app, withdrawn.user, given=False)
    clock.advance(days=3)
    for who in (withdrawn, never):
        await who.notify(app, "consumption-request", clock.now)
    report = await app.app[REFUND_ANSWERS].run_once()
    assert (report.sent, report.skipped) == (0, 2)
    assert fake_api.consumption_sent == []
    skipped = await requests(app, "skipped")
    assert {r["app_user_id"] for r in skipped} == {withdrawn.user, never.user}
    assert all(r["sent"] is None for r in skipped)


async def test_the_preference_changes_while_pending_only(
    make_client, answering_config, clock, replay_ca, fake_api
) -> None:
    answering_config["apple"]["refund_requests"] |= {"delay_minutes": 30}
    app = await started(make_client, answering_config)
    await requested(app, clock, replay_ca[0], fake_api)
    [pending] = await requests(app, "pending")
    url = f"/v1/refund-requests/{pending['id']}"
    # Held for the operator: nothing goes before the delay.
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0
    for body, status in (
        ({"preference": "refund_it"}, 400),
        ({"preference": "grant_full", "note": "x"}, 400),
        ({}, 400),
    ):
        assert (await app.patch(url, json=body, headers=auth(ADMIN_KEY))).status == status
    for key in (READER_KEY, WRITER_KEY):
        resp = await app.patch(url, json={"preference": "grant_full"}, headers=auth(key))
        assert resp.status == 403
    unknown = f"/v1/refund-requests/{uuid.uuid4()}"
    resp = await app.patch(unknown, json={"preference": "grant_full"}, headers=auth(ADMIN_KEY))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "refund_request_not_found"
    resp = await app.patch(url, json={"preference": "grant_full"}, headers=auth(ADMIN_KEY))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["preference"] == "grant_full"
    clock.advance(minutes=31)
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 1
    assert fake_api.consumption_sent[0][1]["refundPreference"] == "GRANT_FULL"
    resp = await app.patch(url, json={"preference": "decline"}, headers=auth(ADMIN_KEY))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "refund_request_not_pending"
    # The change is on the customer's audit trail.
    export = await (
        await app.get(f"/v1/customers/{pending['app_user_id']}/export", headers=auth(ADMIN_KEY))
    ).json()
    assert "refund_preference" in [a["action"] for a in export["audit"]]
    assert [r["status"] for r in export["refund_requests"]] == ["sent"]
    assert [c["consumption_data"] for c in export["consent"]] == [True]


async def test_preference_none_sends_no_preference(
    make_client, answering_config, clock, replay_ca, fake_api
) -> None:
    answering_config["apple"]["refund_requests"] |= {
        "preference": "none",
        "sample_content_provided": False,
    }
    app = await started(make_client, answering_config)
    await requested(app, clock, replay_ca[0], fake_api)
    await app.app[REFUND_ANSWERS].run_once()
    [(_tx, body)] = fake_api.consumption_sent
    assert "refundPreference" not in body
    assert body["sampleContentProvided"] is False


async def test_a_failed_send_is_retried_until_the_deadline(app, clock, replay_ca, fake_api) -> None:
    await requested(app, clock, replay_ca[0], fake_api)
    fake_api.fail_next(503, times=3)  # the client retries twice within one attempt
    report = await app.app[REFUND_ANSWERS].run_once()
    assert (report.sent, report.retried) == (0, 1)
    [pending] = await requests(app, "pending")
    assert pending["attempts"] == 1
    assert "StoreUnavailable" in pending["last_error"]
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0  # not due yet
    clock.advance(seconds=31)
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 1
    assert len(fake_api.consumption_sent) == 1


async def test_a_request_past_its_deadline_fails(app, clock, replay_ca, fake_api) -> None:
    await requested(app, clock, replay_ca[0], fake_api)
    clock.advance(hours=12)
    report = await app.app[REFUND_ANSWERS].run_once()
    assert (report.sent, report.failed) == (0, 1)
    [failed] = await requests(app, "failed")
    assert "deadline" in failed["last_error"]
    assert fake_api.consumption_sent == []


async def test_a_request_apple_refuses_fails_at_once(app, clock, replay_ca, fake_api) -> None:
    await requested(app, clock, replay_ca[0], fake_api)
    fake_api.fail_next(400, 4000006)  # InvalidTransactionIdError: no retry can help
    report = await app.app[REFUND_ANSWERS].run_once()
    assert report.failed == 1
    [failed] = await requests(app, "failed")
    assert failed["attempts"] == 1


async def test_answered_once_across_a_restart_and_two_workers(
    make_client, answering_config, clock, replay_ca, fake_api
) -> None:
    answering_config["apple"]["refund_requests"] |= {"delay_minutes": 30}
    first = await started(make_client, answering_config)
    await many_requested(first, clock, replay_ca[0], fake_api, 2)
    await first.close()  # a restart before the delay ends: the rows wait in PostgreSQL
    clock.advance(minutes=31)
    one = await started(make_client, answering_config)
    two = await started(make_client, answering_config)
    reports = await asyncio.gather(
        one.app[REFUND_ANSWERS].run_once(), two.app[REFUND_ANSWERS].run_once()
    )
    assert sum(r.sent for r in reports) == 2
    assert len(fake_api.consumption_sent) == 2
    assert len({tx for tx, _ in fake_api.consumption_sent}) == 2
    for app in (one, two):
        assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0
    assert len(fake_api.consumption_sent) == 2


async def test_a_send_cut_short_is_sent_after_its_lease(
    app, clock, replay_ca, fake_api, database_url
) -> None:
    """A worker that claimed a request and died before marking it: the claim lapses."""
    await requested(app, clock, replay_ca[0], fake_api)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE refund_requests SET claimed_until = $1, attempts = 1",
            clock.now + timedelta(seconds=90),
        )
    finally:
        await conn.close()
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0
    clock.advance(seconds=91)
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 1


async def test_without_answering_nothing_is_sent_and_the_request_lapses(
    make_client, answering_config, clock, replay_ca, fake_api
) -> None:
    answering_config["apple"]["refund_requests"] = {"answer": False}
    app = await started(make_client, answering_config)
    await requested(app, clock, replay_ca[0], fake_api)
    assert (await app.app[REFUND_ANSWERS].run_once()).sent == 0
    assert [r["status"] for r in await requests(app)] == ["pending"]
    clock.advance(hours=12)
    await app.app[REFUND_ANSWERS].run_once()
    [lapsed] = await requests(app)
    assert lapsed["status"] == "failed"
    assert "answer = false" in lapsed["last_error"]
    assert fake_api.consumption_sent == []


async def test_who_may_record_consent(app) -> None:
    url = "/v1/customers/u-consent/consent"
    body = {"consumption_data": True}
    assert (await app.put(url, json=body)).status == 401
    for headers in (user_auth("u-other"), auth(READER_KEY), auth(WRITER_KEY)):
        assert (await app.put(url, json=body, headers=headers)).status == 403
    for bad in ({}, {"consumption_data": "yes"}, {"consumption_data": True, "x": 1}):
        assert (await app.put(url, json=bad, headers=auth(ADMIN_KEY))).status == 400
    resp = await app.put(url, json=body, headers=auth(ADMIN_KEY))
    answer = await resp.json()
    assert (resp.status, answer["consumption_data"], answer["app_user_id"]) == (
        200,
        True,
        "u-consent",
    )
    assert (await app.get("/v1/refund-requests", headers=auth(READER_KEY))).status == 403
    assert (await app.get("/v1/refund-requests?status=nope", headers=auth(ADMIN_KEY))).status == 400


async def test_erasure_keeps_no_consent_and_no_name_on_requests(
    app, clock, replay_ca, fake_api, database_url
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    resp = await app.delete(f"/v1/customers/{who.user}", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM customer_consents") == 0
        owners = await conn.fetch("SELECT app_user_id FROM refund_requests")
    finally:
        await conn.close()
    assert [o["app_user_id"] for o in owners] != [who.user]
    assert len(owners) == 1
    # The pseudonym's request is not reported on: its consent went with the customer.
    assert (await app.app[REFUND_ANSWERS].run_once()).skipped == 1


async def test_a_refund_request_shows_on_the_console_timeline(
    app, clock, replay_ca, fake_api
) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    [pending] = await requests(app, "pending")
    _resp, cookie = await sign_in(app)
    status, html = await page(app, f"/console/customers/{who.user}", cookie)
    assert status == 200
    assert f'<a href="/console/refund-requests/{pending["id"]}">refund requested</a>' in html
    assert "reason UNINTENDED_PURCHASE" in html


async def test_one_request_is_for_admin_keys_only(app, clock, replay_ca, fake_api) -> None:
    who = await requested(app, clock, replay_ca[0], fake_api)
    [pending] = await requests(app, "pending")
    url = f"/v1/refund-requests/{pending['id']}"
    assert (await app.get(url)).status == 401
    for headers in (auth(READER_KEY), auth(WRITER_KEY), user_auth(who.user)):
        assert (await app.get(url, headers=headers)).status == 403
    resp = await app.get(url, headers=auth(ADMIN_KEY))
    assert (resp.status, (await resp.json())["id"]) == (200, pending["id"])
    assert (
        await app.patch(url, json={"preference": "none"}, headers=user_auth(who.user))
    ).status == 403
