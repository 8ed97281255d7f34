"""POST /webhooks/apple end to end: signed by a local test CA the app trusts (the production
verifier path), applied to real PostgreSQL/Redis, read back through GET /v1/customers/{id}."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from simulators.apple_ca import TestCA
from simulators.apple_scenarios import EVENTS
from tests.conftest import READER_KEY, auth
from tests.contract import ENTITLEMENT_FIELDS
from tests.e2e.apple_helpers import PRODUCT, apple_config, scenario
from tests.proxy import TcpProxy


@pytest.fixture(scope="session")
def apple_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    ca_dir = tmp_path_factory.mktemp("apple-ca")
    ca = TestCA.generate()
    ca.save(ca_dir)
    return ca, ca_dir


@pytest.fixture
async def apple_client(make_client, config, apple_ca):
    return await make_client(apple_config(config, apple_ca[1]))


async def post(client, body) -> tuple[int, dict]:
    resp = await client.post("/webhooks/apple", json=body)
    return resp.status, await resp.json()


async def customer(client, user: str) -> dict:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    return await resp.json()


async def journal(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM store_notifications ORDER BY id")
    finally:
        await conn.close()


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# (events in order, with hours between them) → expected entitlement fields afterwards
LIFECYCLES = {
    "subscribe": (
        ["subscribe"],
        {"status": "active", "active": True, "period_type": "normal", "will_renew": True},
    ),
    "subscribe-trial": (
        ["subscribe-trial"],
        {"status": "active", "active": True, "period_type": "trial"},
    ),
    "subscribe-intro": (["subscribe-intro"], {"status": "active", "period_type": "intro"}),
    "resubscribe": (
        ["subscribe", "expire-voluntary", "resubscribe"],
        {"status": "active", "active": True, "will_renew": True},
    ),
    "renew": (["subscribe", "renew"], {"status": "active", "active": True}),
    "billing-recovery": (
        ["subscribe", "fail", "billing-recovery"],
        {"status": "active", "active": True, "billing_issue_detected_at": None},
    ),
    "cancel": (["subscribe", "cancel"], {"status": "active", "active": True, "will_renew": False}),
    "uncancel": (
        ["subscribe", "cancel", "uncancel"],
        {"will_renew": True, "unsubscribe_detected_at": None},
    ),
    "fail-grace": (["subscribe", "fail-grace"], {"status": "grace_period", "active": True}),
    "fail": (["subscribe", "fail"], {"status": "billing_retry", "active": False}),
    "grace-expired": (
        ["subscribe", "fail-grace", "grace-expired"],
        {"status": "billing_retry", "active": False},
    ),
    "expire-voluntary": (
        ["subscribe", "cancel", "expire-voluntary"],
        {"status": "expired", "active": False, "will_renew": False},
    ),
    "expire-billing-retry": (
        ["subscribe", "fail", "expire-billing-retry"],
        {"status": "expired", "active": False},
    ),
    "expire-price-increase": (["subscribe", "expire-price-increase"], {"status": "expired"}),
    "expire-not-for-sale": (["subscribe", "expire-not-for-sale"], {"status": "expired"}),
    "expire": (["subscribe", "expire"], {"status": "expired", "active": False}),
    "upgrade": (
        ["subscribe", "upgrade"],
        {"status": "active", "active": True, "product_id": f"{PRODUCT}.upgrade"},
    ),
    "downgrade": (["subscribe", "downgrade"], {"status": "active", "product_id": PRODUCT}),
    "downgrade-cancelled": (
        ["subscribe", "downgrade", "downgrade-cancelled"],
        {"status": "active", "product_id": PRODUCT},
    ),
    "offer-redeemed": (["subscribe", "offer-redeemed"], {"status": "active", "active": True}),
    "offer-redeemed-upgrade": (
        ["subscribe", "offer-redeemed-upgrade"],
        {"status": "active", "period_type": "intro", "product_id": f"{PRODUCT}.upgrade"},
    ),
    "offer-redeemed-downgrade": (["subscribe", "offer-redeemed-downgrade"], {"status": "active"}),
    "price-increase-pending": (["subscribe", "price-increase-pending"], {"status": "active"}),
    "price-increase-accepted": (
        ["subscribe", "price-increase-accepted"],
        {"status": "active", "active": True},
    ),
    "refund": (["subscribe", "refund"], {"status": "revoked", "active": False}),
    "refund-declined": (["subscribe", "refund-declined"], {"status": "active", "active": True}),
    "refund-reversed": (
        ["subscribe", "refund", "refund-reversed"],
        {"status": "active", "active": True, "revoked_at": None},
    ),
    "revoke": (["subscribe", "revoke"], {"status": "revoked", "active": False}),
    "consumption-request": (["subscribe", "consumption-request"], {"status": "active"}),
    "renewal-extended": (["subscribe", "renewal-extended"], {"status": "active"}),
    "metadata-update": (["subscribe", "metadata-update"], {"status": "active"}),
    "migration": (["subscribe", "migration"], {"status": "active"}),
    "price-change": (["subscribe", "price-change"], {"status": "active"}),
}


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
async def test_subscription_lifecycle(apple_client, apple_ca, clock, name) -> None:
    events, expected = LIFECYCLES[name]
    s = scenario(apple_ca[0])
    for event in events:
        clock.advance(hours=1)
        status, body = await post(apple_client, s.body(event, clock.now))
        assert (status, body) == (200, {"status": "processed"}), event
    got = (await customer(apple_client, s.state.user))["entitlements"]["premium"]
    for field, value in expected.items():
        assert got[field] == value, (name, field, got)
    # Every field the contract names, each consistent with the lifecycle's signed data.
    assert set(got) == ENTITLEMENT_FIELDS
    assert got["store"] == "app_store"
    assert got["is_sandbox"] is True
    assert got["product_id"] == s.state.product
    assert got["expires_at"] == iso(from_ms(s.state.expires_ms))
    assert got["purchased_at"] == iso(from_ms(s.state.purchased_ms))
    assert (got["revoked_at"] is not None) == (got["status"] == "revoked")
    assert (got["grace_period_expires_at"] is not None) == (got["status"] == "grace_period")
    if got["status"] in ("active", "grace_period", "billing_retry"):
        # will_renew also reads false once revoked or expired; while live it mirrors the
        # auto-renew switch, whose turning off is what unsubscribe_detected_at records.
        assert (got["unsubscribe_detected_at"] is not None) == (not got["will_renew"])
    in_billing_trouble = got["status"] in ("grace_period", "billing_retry")
    if in_billing_trouble:
        assert got["billing_issue_detected_at"] is not None
    assert got["active"] == (got["status"] in ("active", "grace_period"))
    assert got["period_type"] in ("trial", "intro", "normal")


async def test_field_by_field_after_cancel(apple_client, apple_ca, clock) -> None:
    s = scenario(apple_ca[0], environment="Production")
    await post(apple_client, s.body("subscribe-trial", clock.now))
    clock.advance(days=1)
    cancelled_at = clock.now
    await post(apple_client, s.body("cancel", clock.now))
    body = await customer(apple_client, s.state.user)
    assert body["entitlements"]["premium"] == {
        "active": True,
        "status": "active",
        "period_type": "trial",
        "will_renew": False,
        "expires_at": iso(cancelled_at - timedelta(days=1) + timedelta(days=7)),
        "grace_period_expires_at": None,
        "product_id": PRODUCT,
        "store": "app_store",
        "is_sandbox": False,
        "purchased_at": iso(cancelled_at - timedelta(days=1)),
        "unsubscribe_detected_at": iso(cancelled_at),
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }
    [sub] = body["subscriptions"]
    assert sub["original_transaction_id"] == s.state.original_transaction_id
    clock.advance(days=7)  # the paid period ends: expired, no longer active
    premium = (await customer(apple_client, s.state.user))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("expired", False)


async def test_grace_period_fields(apple_client, apple_ca, clock) -> None:
    s = scenario(apple_ca[0])
    await post(apple_client, s.body("subscribe", clock.now))
    clock.advance(days=30)
    await post(apple_client, s.body("fail-grace", clock.now))
    premium = (await customer(apple_client, s.state.user))["entitlements"]["premium"]
    assert premium["status"] == "grace_period"
    assert premium["grace_period_expires_at"] == iso(clock.now + timedelta(days=16))
    assert premium["billing_issue_detected_at"] == iso(clock.now)
    assert premium["active"] is True
    clock.advance(days=17)
    premium = (await customer(apple_client, s.state.user))["entitlements"]["premium"]
    assert premium["active"] is False


async def test_refund_sets_revoked_at(apple_client, apple_ca, clock) -> None:
    s = scenario(apple_ca[0])
    await post(apple_client, s.body("subscribe", clock.now))
    clock.advance(days=2)
    await post(apple_client, s.body("refund", clock.now))
    premium = (await customer(apple_client, s.state.user))["entitlements"]["premium"]
    assert premium["revoked_at"] == iso(clock.now)
    assert premium["active"] is False


async def test_family_shared_revoke_carries_ownership(apple_client, apple_ca, clock) -> None:
    s = scenario(apple_ca[0])
    await post(apple_client, s.body("subscribe", clock.now))
    clock.advance(hours=1)
    await post(apple_client, s.body("revoke", clock.now))
    [sub] = (await customer(apple_client, s.state.user))["subscriptions"]
    assert sub["ownership"] == "family_shared"
    assert sub["status"] == "revoked"


@pytest.mark.parametrize(
    ("event", "entitled", "expires"),
    [
        ("one-time-non-consumable", True, None),
        ("one-time-consumable", False, None),
        ("one-time-non-renewing", True, None),
    ],
)
async def test_one_time_charges(apple_client, apple_ca, clock, event, entitled, expires) -> None:
    s = scenario(apple_ca[0], product="com.example.lifetime")
    status, body = await post(apple_client, s.body(event, clock.now))
    assert (status, body) == (200, {"status": "processed"})
    got = await customer(apple_client, s.state.user)
    assert len(got["purchases"]) == 1
    assert got["subscriptions"] == []
    if entitled:
        assert got["entitlements"]["premium"]["active"] is True
        assert got["entitlements"]["premium"]["expires_at"] == expires
    else:
        assert "premium" not in got["entitlements"]


@pytest.mark.parametrize(
    "event",
    [
        "test",
        "renewal-extension-summary",
        "external-purchase-token",
        "external-purchase-token-created",
        "external-purchase-token-reminder",
        "rescind-consent",
    ],
)
async def test_notifications_without_a_purchase_are_ignored_and_journaled(
    apple_client, apple_ca, clock, database_url, event
) -> None:
    s = scenario(apple_ca[0])
    status, body = await post(apple_client, s.body(event, clock.now))
    assert (status, body) == (200, {"status": "ignored"})
    [row] = await journal(database_url)
    assert row["result"] == "ignored"
    assert row["notification_type"] == EVENTS[event][0]


async def test_renewal_extension_failure_is_processed(apple_client, apple_ca, clock) -> None:
    s = scenario(apple_ca[0])
    await post(apple_client, s.body("subscribe", clock.now))
    status, body = await post(apple_client, s.body("renewal-extension-failure", clock.now))
    assert (status, body) == (200, {"status": "processed"})


async def test_every_apple_type_and_subtype_is_covered_here() -> None:
    covered = set(LIFECYCLES) | {
        "test",
        "renewal-extension-summary",
        "renewal-extension-failure",
        "external-purchase-token",
        "external-purchase-token-created",
        "external-purchase-token-reminder",
        "rescind-consent",
        "one-time-consumable",
        "one-time-non-consumable",
        "one-time-non-renewing",
    }
    assert set(EVENTS) <= covered
    assert {t for t, _ in EVENTS.values()} >= {
        "SUBSCRIBED",
        "DID_RENEW",
        "DID_CHANGE_RENEWAL_STATUS",
        "DID_CHANGE_RENEWAL_PREF",
        "DID_FAIL_TO_RENEW",
        "GRACE_PERIOD_EXPIRED",
        "EXPIRED",
        "OFFER_REDEEMED",
        "PRICE_INCREASE",
        "REFUND",
        "REFUND_DECLINED",
        "REFUND_REVERSED",
        "REVOKE",
        "CONSUMPTION_REQUEST",
        "RENEWAL_EXTENDED",
        "RENEWAL_EXTENSION",
        "ONE_TIME_CHARGE",
        "TEST",
        "EXTERNAL_PURCHASE_TOKEN",
        "RESCIND_CONSENT",
        "METADATA_UPDATE",
        "MIGRATION",
        "PRICE_CHANGE",
    }


async def test_duplicate_notification_uuid(apple_client, apple_ca, clock, database_url) -> None:
    s = scenario(apple_ca[0])
    body = s.body("subscribe", clock.now)
    assert await post(apple_client, body) == (200, {"status": "processed"})
    assert await post(apple_client, body) == (200, {"status": "duplicate"})
    assert len(await journal(database_url)) == 1


async def test_late_notification_is_processed_and_changes_nothing(
    apple_client, apple_ca, clock
) -> None:
    s = scenario(apple_ca[0])
    await post(apple_client, s.body("subscribe", clock.now))
    clock.advance(hours=1)
    early_renewal = s.body("renew", clock.now)
    clock.advance(hours=1)
    refund = s.body("refund", clock.now)
    assert await post(apple_client, refund) == (200, {"status": "processed"})
    before = await customer(apple_client, s.state.user)
    assert await post(apple_client, early_renewal) == (200, {"status": "processed"})
    after = await customer(apple_client, s.state.user)
    assert after["entitlements"] == before["entitlements"]
    assert after["entitlements"]["premium"]["status"] == "revoked"


async def test_unlinked_purchase_without_app_account_token(
    apple_client, apple_ca, clock, database_url
) -> None:
    s = scenario(apple_ca[0], user="not-a-uuid")
    assert await post(apple_client, s.body("subscribe", clock.now)) == (
        200,
        {"status": "processed"},
    )
    assert (await customer(apple_client, "not-a-uuid"))["entitlements"] == {}
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT app_user_id, status FROM purchases")
    finally:
        await conn.close()
    assert (row["app_user_id"], row["status"]) == (None, "active")


def _other_ca() -> TestCA:
    return TestCA.generate(name="attacker")


def _tamper(jws: str) -> str:
    import base64

    header, payload, sig = jws.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=="))
    decoded["notificationUUID"] = "tampered"
    new = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{new}.{sig}"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("forged", 422, None),
        ("tampered", 422, None),
        ("wrong_bundle", 422, "wrong_app"),
        ("wrong_app_id", 422, "wrong_app"),
        ("wrong_environment", 422, None),
        ("not_json", 400, "malformed_payload"),
        ("no_signed_payload", 400, "malformed_payload"),
        ("array_body", 400, "malformed_payload"),
        ("garbage_jws", 422, None),
    ],
)
async def test_rejected_input_changes_nothing(
    make_client, config, apple_ca, clock, database_url, case, status, code
) -> None:
    overrides = {"environments": ["Production"]} if case == "wrong_environment" else {}
    client = await make_client(apple_config(config, apple_ca[1], **overrides))
    ca = _other_ca() if case == "forged" else apple_ca[0]
    s = scenario(
        ca,
        environment="Production" if case == "wrong_app_id" else "Sandbox",
        bundle_id="com.other.app" if case == "wrong_bundle" else "com.example.app",
        app_apple_id=999 if case == "wrong_app_id" else 1234567890,
    )
    body = s.body("subscribe", clock.now)
    if case == "tampered":
        body = {"signedPayload": _tamper(body["signedPayload"])}
    data = {
        "not_json": b"{not json",
        "no_signed_payload": json.dumps({"payload": "x"}).encode(),
        "array_body": b"[]",
        "garbage_jws": json.dumps({"signedPayload": "a.b.c"}).encode(),
    }.get(case, json.dumps(body).encode())
    resp = await client.post(
        "/webhooks/apple", data=data, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert await journal(database_url) == []
    assert (await customer(client, s.state.user))["entitlements"] == {}


async def test_store_not_configured_is_404(client) -> None:
    resp = await client.post("/webhooks/apple", json={"signedPayload": "x"})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "store_not_configured"


async def test_database_down_is_503_and_the_retry_is_processed(
    make_client, config, apple_ca, clock, database_url
) -> None:
    proxy = TcpProxy.for_postgres(database_url)
    await proxy.start()
    try:
        config["database"]["url"] = proxy.postgres_url(database_url)
        client = await make_client(apple_config(config, apple_ca[1]))
        s = scenario(apple_ca[0])
        body = s.body("subscribe", clock.now)
        await proxy.down()
        resp = await client.post("/webhooks/apple", json=body)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "database_unavailable"
        await proxy.up()
        assert await post(client, body) == (200, {"status": "processed"})
        assert (await customer(client, s.state.user))["entitlements"]["premium"]["active"]
    finally:
        await proxy.down()


async def test_streamed_body_over_the_limit_is_413(apple_client, database_url) -> None:
    async def chunks():
        for _ in range(17):
            yield b"x" * 65536  # 1 MiB + 64 KiB without a Content-Length

    resp = await apple_client.post(
        "/webhooks/apple", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert await journal(database_url) == []
