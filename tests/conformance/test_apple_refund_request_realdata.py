"""The real Sandbox CONSUMPTION_REQUEST (../shared/realdata, signed by Apple) answered end to
end (issue 21): verified against Apple Root CA - G3, stored as a refund request of the
customer who holds the purchase, consumption information sent to the fake App Store Server
API (real HTTP, Apple's body checked field by field there) for the real transaction, and
closed by the real REFUND that followed. The clock is set from the payloads' own dates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from api.keys import REFUND_ANSWERS
from tests.conformance.apple_realdata import (
    BUNDLE_ID,
    iso,
    just_after,
    load_notification,
    realdata_config,
)
from tests.conftest import ADMIN_KEY, WRITER_KEY, auth
from tests.e2e.apple_helpers import ISSUER_ID, KEY_ID, api_key_file
from tests.fakes.fake_appstore import FakeAppStore

USER = "u-session-refund"


@pytest.fixture
async def fake_api(tmp_path) -> AsyncIterator[tuple[FakeAppStore, str]]:
    key, path = api_key_file(tmp_path)
    fake = FakeAppStore(key.public_key(), KEY_ID, ISSUER_ID, BUNDLE_ID, environment="Sandbox")
    await fake.start()
    yield fake, str(path)
    await fake.stop()


async def test_the_real_consumption_request_is_answered_and_closed_by_the_real_refund(
    make_client, config, clock, realdata, fake_api
) -> None:
    fake, key_file = fake_api
    cfg = realdata_config(config, realdata)
    cfg["apple"] |= {
        "issuer_id": ISSUER_ID,
        "key_id": KEY_ID,
        "private_key_file": key_file,
        "api_base_url": fake.url,
        "refund_requests": {"answer": True, "preference": "grant_prorated"},
    }
    client = await make_client(cfg)
    await client.app[REFUND_ANSWERS].stop()  # the test runs the passes
    subscribed, consumption, refund = (
        load_notification(realdata, n) for n in ("session-30", "session-31", "session-32")
    )
    assert consumption.notification_type == "CONSUMPTION_REQUEST"
    requested_tx = consumption.transaction
    for known in (subscribed, consumption):  # Apple knows its own transactions
        fake.add_transaction(known.signed_transaction)

    clock.now = just_after(subscribed.signed_ms)
    resp = await client.post(
        "/v1/purchases",
        json={
            "app_user_id": USER,
            "store": "app_store",
            "signed_transaction": subscribed.signed_transaction,
        },
        headers=auth(WRITER_KEY),
    )
    assert resp.status == 200, await resp.text()
    resp = await client.put(
        f"/v1/customers/{USER}/consent", json={"consumption_data": True}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    for note in (subscribed, consumption):
        clock.now = just_after(note.signed_ms)
        resp = await client.post("/webhooks/apple", json={"signedPayload": note.jws})
        assert (resp.status, await resp.json()) == (200, {"status": "processed"})

    listed = await client.get("/v1/refund-requests?status=pending", headers=auth(ADMIN_KEY))
    [request] = (await listed.json())["refund_requests"]
    assert request["app_user_id"] == USER
    assert request["transaction_id"] == requested_tx["transactionId"]
    assert request["product_id"] == requested_tx["productId"]
    assert request["reason"] == consumption.payload["data"]["consumptionRequestReason"]
    assert request["requested_at"] == iso(consumption.signed_ms)

    clock.now += timedelta(minutes=1)
    assert (await client.app[REFUND_ANSWERS].run_once()).sent == 1
    start, end = requested_tx["purchaseDate"], requested_tx["expiresDate"]
    used = round((consumption.signed_ms - start) / (end - start) * 100_000)
    assert fake.consumption_sent == [
        (
            requested_tx["transactionId"],
            {
                "customerConsented": True,
                "sampleContentProvided": True,
                "deliveryStatus": "DELIVERED",
                "consumptionPercentage": max(0, min(100_000, used)),
                "refundPreference": "GRANT_PRORATED",
            },
        )
    ]

    clock.now = just_after(refund.signed_ms)
    resp = await client.post("/webhooks/apple", json={"signedPayload": refund.jws})
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    listed = await client.get("/v1/refund-requests", headers=auth(ADMIN_KEY))
    [closed] = (await listed.json())["refund_requests"]
    assert (closed["id"], closed["status"]) == (request["id"], "refunded")

    # Money (issue 22): the real transactions' prices, each charge once, the refund on
    # Apple's revocation date.
    customer = await client.get(f"/v1/customers/{USER}", headers=auth(ADMIN_KEY))
    [sub] = (await customer.json())["subscriptions"]
    current = subscribed.transaction
    assert sub["price"] == {"amount": str(Decimal(current["price"]) / 1000), "currency": "AUD"}
    resp = await client.get(
        "/v1/revenue", params={"from": "2020-01-01", "to": "2029-12-31"}, headers=auth(ADMIN_KEY)
    )
    days = (await resp.json())["days"]
    gross = sum(Decimal(r["gross"]) for r in days)
    refunded = sum(Decimal(r["refunded"]) for r in days)
    charged = Decimal(current["price"] + requested_tx["price"]) / 1000
    assert (gross, refunded) == (charged, Decimal(requested_tx["price"]) / 1000)
    refund_day = iso(refund.transaction["revocationDate"])[:10]
    assert [r["date"] for r in days if r["refunds"]] == [refund_day]
