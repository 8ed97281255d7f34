"""POST /v1/purchases for the App Store, end to end: StoreKit 2 signed transactions verified
locally, transaction ids and legacy receipts looked up in a fake App Store Server API over
HTTP on 127.0.0.1, linked to the user under the transfer policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulators.apple_ca import (
    TestCA,
    notification_payload,
    renewal_payload,
    transaction_payload,
)
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_token
from tests.e2e.apple_helpers import (
    BUNDLE_ID,
    ISSUER_ID,
    KEY_ID,
    PRODUCT,
    api_key_file,
    apple_config,
    saved_ca,
)
from tests.fakes.fake_appstore import FakeAppStore, app_receipt


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory):
    return saved_ca(tmp_path_factory.mktemp("apple-ca-purchases"))


@pytest.fixture(scope="session")
def api_key(tmp_path_factory):
    return api_key_file(tmp_path_factory.mktemp("apple-key"))


@pytest.fixture
async def fake_api(api_key):
    fake = FakeAppStore(
        api_key[0].public_key(), KEY_ID, ISSUER_ID, BUNDLE_ID, environment="Sandbox"
    )
    await fake.start()
    yield fake
    await fake.stop()


def signed_tx(
    ca: TestCA,
    clock,
    tx_id: str,
    *,
    original: str | None = None,
    product: str = PRODUCT,
    bundle: str = BUNDLE_ID,
    **extra,
) -> str:
    return ca.sign(
        transaction_payload(
            bundle_id=bundle,
            environment="Sandbox",
            transaction_id=tx_id,
            original_transaction_id=original or tx_id,
            product_id=product,
            purchase_date=clock.now - timedelta(days=1),
            signed_date=clock.now,
            **{"expires_date": clock.now + timedelta(days=29), **extra},
        )
    )


@pytest.fixture
async def plain_client(make_client, config, ca_dir):
    return await make_client(apple_config(config, ca_dir[1]))


@pytest.fixture
async def api_client(make_client, config, ca_dir, api_key, fake_api):
    return await make_client(
        apple_config(
            config,
            ca_dir[1],
            issuer_id=ISSUER_ID,
            key_id=KEY_ID,
            private_key_file=str(api_key[1]),
            api_base_url=fake_api.url,
        )
    )


async def submit(client, body, key=WRITER_KEY):
    resp = await client.post("/v1/purchases", json=body, headers=auth(key))
    return resp.status, await resp.json()


async def test_signed_transaction_is_verified_linked_and_answered(
    plain_client, ca_dir, clock
) -> None:
    jws = signed_tx(ca_dir[0], clock, "1001")
    status, body = await submit(
        plain_client,
        {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws},
        key=user_token("u-1"),
    )
    assert status == 200
    assert body["app_user_id"] == "u-1"
    premium = body["entitlements"]["premium"]
    assert (premium["active"], premium["status"], premium["store"]) == (True, "active", "app_store")
    assert premium["expires_at"] == (clock.now + timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%SZ")
    [sub] = body["subscriptions"]
    assert sub["original_transaction_id"] == "1001"
    read = await plain_client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert (await read.json())["entitlements"] == body["entitlements"]


async def test_user_token_may_submit_only_for_itself(plain_client, ca_dir, clock) -> None:
    jws = signed_tx(ca_dir[0], clock, "1001")
    body = {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws}
    assert (await submit(plain_client, body, key=user_token("u-2")))[0] == 403
    assert (await submit(plain_client, body, key=READER_KEY))[0] == 403
    assert (await submit(plain_client, body, key="nope-nope-nope-nope"))[0] == 401
    assert (await submit(plain_client, body, key=ADMIN_KEY))[0] == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"store": "app_store", "signed_transaction": "x"}, 400),
        ({"app_user_id": "u-1", "store": "mars", "signed_transaction": "x"}, 400),
        ({"app_user_id": "u-1", "store": "app_store"}, 400),
        ({"app_user_id": "u-1", "store": "app_store", "transaction_id": "1", "receipt": "x"}, 400),
        ({"app_user_id": "bad id", "store": "app_store", "transaction_id": "1"}, 400),
        ({"app_user_id": "u-1", "store": "app_store", "signed_transaction": "a.b.c"}, 422),
    ],
)
async def test_malformed_submissions(plain_client, body, status) -> None:
    got, answer = await submit(plain_client, body)
    assert got == status
    assert answer["error"]["message"]


async def test_signed_transaction_of_another_app_is_422(plain_client, ca_dir, clock) -> None:
    jws = signed_tx(ca_dir[0], clock, "1001", bundle="com.other.app")
    status, body = await submit(
        plain_client, {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws}
    )
    assert status == 422
    assert body["error"]["code"] == "wrong_app"
    read = await plain_client.get("/v1/customers/u-1", headers=auth(READER_KEY))
    assert (await read.json())["subscriptions"] == []


async def test_forged_signed_transaction_is_422(plain_client, clock) -> None:
    jws = signed_tx(TestCA.generate(name="forger"), clock, "1001")
    status, _ = await submit(
        plain_client, {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws}
    )
    assert status == 422


async def test_transaction_id_without_api_credentials_is_422(plain_client) -> None:
    status, body = await submit(
        plain_client, {"app_user_id": "u-1", "store": "app_store", "transaction_id": "1001"}
    )
    assert status == 422
    # contract §3: 422 for a submission this service cannot validate; 404
    # store_not_configured is the webhook's answer (one error, one status)
    assert body["error"]["code"] == "submission_not_supported"


async def test_app_store_not_configured_is_422(client) -> None:
    status, body = await submit(
        client, {"app_user_id": "u-1", "store": "app_store", "transaction_id": "1001"}
    )
    assert status == 422
    # contract §3: 422 for a submission this service cannot validate; 404
    # store_not_configured is the webhook's answer (one error, one status)
    assert body["error"]["code"] == "submission_not_supported"


async def test_transaction_id_pulls_status_and_full_history(
    api_client, fake_api, ca_dir, clock
) -> None:
    ca = ca_dir[0]
    sub_tx = signed_tx(ca, clock, "2001")
    lifetime = signed_tx(
        ca,
        clock,
        "3001",
        product="com.example.lifetime",
        product_type="Non-Consumable",
        expires_date=None,
    )
    fake_api.add_transaction(sub_tx)
    fake_api.add_transaction(lifetime)
    renewal = ca.sign(
        renewal_payload(
            environment="Sandbox",
            original_transaction_id="2001",
            product_id=PRODUCT,
            signed_date=clock.now,
            auto_renew=False,
            auto_renew_product_id=PRODUCT,
            renewal_date=clock.now + timedelta(days=29),
        )
    )
    fake_api.set_status(sub_tx, renewal, 1)
    status, body = await submit(
        api_client, {"app_user_id": "u-7", "store": "app_store", "transaction_id": "2001"}
    )
    assert status == 200, body
    assert {s["original_transaction_id"] for s in body["subscriptions"]} == {"2001"}
    assert {p["original_transaction_id"] for p in body["purchases"]} == {"3001"}
    assert body["subscriptions"][0]["will_renew"] is False  # from the status' renewal info
    assert body["entitlements"]["premium"]["active"] is True
    paths = [r.path for r in fake_api.requests]
    assert "/inApps/v1/transactions/2001" in paths
    assert any(p.startswith("/inApps/v2/history/") for p in paths)
    assert any(p.startswith("/inApps/v1/subscriptions/") for p in paths)


async def test_legacy_receipt_is_looked_up(api_client, fake_api, ca_dir, clock) -> None:
    fake_api.add_transaction(signed_tx(ca_dir[0], clock, "4001"))
    status, body = await submit(
        api_client,
        {"app_user_id": "u-8", "store": "app_store", "receipt": app_receipt(["4001"])},
    )
    assert status == 200, body
    assert body["subscriptions"][0]["original_transaction_id"] == "4001"


async def test_malformed_receipt_is_400(api_client) -> None:
    status, _ = await submit(
        api_client, {"app_user_id": "u-8", "store": "app_store", "receipt": "bm90IGEgcmVjZWlwdA=="}
    )
    assert status == 400


async def test_unknown_transaction_is_422(api_client) -> None:
    status, body = await submit(
        api_client, {"app_user_id": "u-1", "store": "app_store", "transaction_id": "999"}
    )
    assert status == 422
    assert body["error"]["code"] == "purchase_not_found"


async def test_store_api_down_is_503_and_retry_succeeds(
    api_client, fake_api, ca_dir, clock
) -> None:
    fake_api.add_transaction(signed_tx(ca_dir[0], clock, "5001"))
    fake_api.fail_next(503, times=20)
    status, body = await submit(
        api_client, {"app_user_id": "u-1", "store": "app_store", "transaction_id": "5001"}
    )
    assert status == 503
    assert body["error"]["code"] == "store_unavailable"
    fake_api._failures.clear()
    status, _ = await submit(
        api_client, {"app_user_id": "u-1", "store": "app_store", "transaction_id": "5001"}
    )
    assert status == 200


async def test_transfer_policies(make_client, config, ca_dir, clock) -> None:
    jws = signed_tx(ca_dir[0], clock, "6001")
    client = await make_client(apple_config(config, ca_dir[1]))
    first = {"app_user_id": "u-1", "store": "app_store", "signed_transaction": jws}
    second = {**first, "app_user_id": "u-2"}
    assert (await submit(client, first))[0] == 200
    status, body = await submit(client, second)  # default policy: transfer
    assert status == 200
    assert body["entitlements"]["premium"]["active"] is True
    old = await (await client.get("/v1/customers/u-1", headers=auth(READER_KEY))).json()
    assert old["subscriptions"] == []
    await client.close()

    config["customers"] = {"transfer_policy": "keep"}
    client = await make_client(config)
    status, body = await submit(client, first)  # now owned by u-2: kept there
    assert status == 409
    assert body["error"]["code"] == "purchase_owned_by_another_user"
    assert (await submit(client, second))[0] == 200  # the owner may resubmit


async def test_grace_period_without_end_date_is_completed_from_the_status_api(
    api_client, fake_api, ca_dir, clock
) -> None:
    """DID_FAIL_TO_RENEW/GRACE_PERIOD seen with gracePeriodExpiresDate null: the webhook asks
    Get All Subscription Statuses for the renewal info that carries it."""
    ca = ca_dir[0]
    user = "0b7d6f5e-2f6a-4b8e-9a51-5f3b2f4d1c11"
    tx = signed_tx(ca, clock, "7001", appAccountToken=user)
    grace_end = clock.now + timedelta(days=16)
    renewal_args = {
        "environment": "Sandbox",
        "original_transaction_id": "7001",
        "product_id": PRODUCT,
        "signed_date": clock.now,
        "isInBillingRetryPeriod": True,
    }
    without_date = ca.sign(renewal_payload(**renewal_args))
    with_date = ca.sign(
        renewal_payload(**renewal_args, gracePeriodExpiresDate=int(grace_end.timestamp() * 1000))
    )
    fake_api.add_transaction(tx)
    fake_api.set_status(tx, with_date, 4)
    notification = notification_payload(
        notification_type="DID_FAIL_TO_RENEW",
        subtype="GRACE_PERIOD",
        bundle_id=BUNDLE_ID,
        environment="Sandbox",
        signed_date=clock.now,
        app_apple_id=1234567890,
        signed_transaction=tx,
        signed_renewal=without_date,
        status=4,
    )
    resp = await api_client.post("/webhooks/apple", json={"signedPayload": ca.sign(notification)})
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})
    body = await (await api_client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))).json()
    premium = body["entitlements"]["premium"]
    assert premium["status"] == "grace_period"
    assert premium["grace_period_expires_at"] == grace_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert premium["active"] is True
    assert any(r.path.startswith("/inApps/v1/subscriptions/7001") for r in fake_api.requests)
