"""The store action calls (issue 21) of the real clients against the fakes over real HTTP on
127.0.0.1: Apple's consumption information, renewal-date extensions (single and mass) and
Play's subscriptionsv2 defer / revoke and orders.refund. Each checks the exact JSON the fake
received and how each store refusal maps to our errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from receipts.apple.server_api import AppStoreServerClient, StoreCredentialsRejected
from receipts.apple.verifier import AppleVerifier
from receipts.errors import (
    PurchaseNotFound,
    StoreActionRefused,
    StoreRequestRejected,
    StoreUnavailable,
)
from receipts.google.play import AccessTokens, PlayAccessDenied, PlayClient
from simulators.apple_ca import TestCA, transaction_payload
from simulators.fake_play import FakePlay, product_purchase, subscription_purchase
from simulators.google_signer import GoogleTestKeys
from simulators.play_purchases import rfc3339
from tests.conftest import Clock
from tests.fakes.fake_appstore import FakeAppStore

BUNDLE = "com.example.app"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
PRODUCT = "com.example.premium.monthly"
NOW = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)

_CA = TestCA.generate()
_API_KEY = ec.generate_private_key(ec.SECP256R1())
_API_PEM = _API_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)

CONSUMPTION = {
    "customerConsented": True,
    "sampleContentProvided": False,
    "deliveryStatus": "DELIVERED",
    "consumptionPercentage": 25_000,
    "refundPreference": "GRANT_PRORATED",
}


# --- Apple ---------------------------------------------------------------------------------


def signed_tx(
    env: str,
    transaction_id: str,
    original_id: str,
    *,
    product: str = PRODUCT,
    expires: dt.datetime = NOW + dt.timedelta(days=20),
    **extra: Any,
) -> str:
    return _CA.sign(
        transaction_payload(
            bundle_id=BUNDLE,
            environment=env,
            transaction_id=transaction_id,
            original_transaction_id=original_id,
            product_id=product,
            purchase_date=NOW - dt.timedelta(days=10),
            signed_date=NOW,
            expires_date=expires,
            **extra,
        )
    )


@dataclass
class Apple:
    production: FakeAppStore
    sandbox: FakeAppStore
    session: aiohttp.ClientSession
    clock: Clock

    def client(self, private_key: bytes = _API_PEM) -> AppStoreServerClient:
        verifier = AppleVerifier(
            BUNDLE, 1234567890, ["Production", "Sandbox"], [_CA.root_der], False
        )
        return AppStoreServerClient(
            self.session,
            verifier,
            issuer_id=ISSUER,
            key_id=KEY_ID,
            private_key=private_key,
            bundle_id=BUNDLE,
            production_url=self.production.url,
            sandbox_url=self.sandbox.url,
            timeout=5.0,
            retries=2,
            backoff=0.01,
        )

    def subscription(self, original_id: str, status: int = 1, **extra: Any) -> str:
        """An auto-renewable subscription of the production fake with this status."""
        tx = signed_tx("Production", f"{original_id}1", original_id, **extra)
        self.production.add_transaction(tx)
        self.production.set_status(tx, None, status)
        return tx


@pytest.fixture
async def apple() -> AsyncIterator[Apple]:
    clock = Clock(NOW)
    fakes = [
        FakeAppStore(_API_KEY.public_key(), KEY_ID, ISSUER, BUNDLE, environment=env, clock=clock)
        for env in ("Production", "Sandbox")
    ]
    for fake in fakes:
        await fake.start()
    async with aiohttp.ClientSession() as session:
        yield Apple(fakes[0], fakes[1], session, clock)
    for fake in fakes:
        await fake.stop()


async def test_consumption_information_is_sent_as_apple_documents_it(apple: Apple) -> None:
    apple.sandbox.add_transaction(signed_tx("Sandbox", "2001", "2001"))
    result = await apple.client().send_consumption_information("2001", "Sandbox", CONSUMPTION)
    assert result is None  # Apple answers 202 with no body
    [(transaction_id, body)] = apple.sandbox.consumption_sent
    assert transaction_id == "2001"
    assert body == {
        "customerConsented": True,
        "sampleContentProvided": False,
        "deliveryStatus": "DELIVERED",
        "consumptionPercentage": 25000,
        "refundPreference": "GRANT_PRORATED",
    }
    [request] = apple.sandbox.requests
    assert (request.method, request.path) == ("PUT", "/inApps/v2/transactions/consumption/2001")
    assert request.status == 200  # not refused by the guard (the answer itself is 202)
    assert apple.production.requests == []  # the environment named, nothing else


async def test_consumption_information_leaves_out_what_is_not_given(apple: Apple) -> None:
    apple.production.add_transaction(signed_tx("Production", "2002", "2002"))
    body = {"customerConsented": True, "sampleContentProvided": True, "deliveryStatus": "DELIVERED"}
    await apple.client().send_consumption_information("2002", "Production", body)
    assert apple.production.consumption_sent == [("2002", body)]  # no nulls added


@pytest.mark.parametrize(
    "change",
    [
        {"customerConsented": False},
        {"customerConsented": "true"},
        {"sampleContentProvided": 0},
        {"deliveryStatus": "LOST_IN_THE_MAIL"},
        {"deliveryStatus": None},
        {"consumptionPercentage": 100_001},
        {"consumptionPercentage": -1},
        {"consumptionPercentage": True},
        {"consumptionPercentage": 50.5},
        {"refundPreference": "MAYBE"},
        {"playTime": 3},  # a v1 field: not in ConsumptionRequest v2
    ],
)
async def test_a_bad_consumption_body_is_refused_before_any_request(
    apple: Apple, change: dict[str, Any]
) -> None:
    apple.production.add_transaction(signed_tx("Production", "2003", "2003"))
    with pytest.raises(StoreRequestRejected):
        await apple.client().send_consumption_information(
            "2003", "Production", CONSUMPTION | change
        )
    assert apple.production.requests == []


async def test_a_consumption_body_missing_a_required_field_is_refused_locally(
    apple: Apple,
) -> None:
    body = {k: v for k, v in CONSUMPTION.items() if k != "deliveryStatus"}
    with pytest.raises(StoreRequestRejected, match="deliveryStatus"):
        await apple.client().send_consumption_information("2003", "Production", body)
    assert apple.production.requests == []


async def test_the_fake_refuses_bad_consumption_bodies_as_apple_does(apple: Apple) -> None:
    """The fake's own checks (the client never sends these), straight over HTTP."""
    apple.production.add_transaction(signed_tx("Production", "2004", "2004"))
    client = apple.client()
    url = f"{apple.production.url}/inApps/v2/transactions/consumption/2004"
    headers = {"Authorization": f"Bearer {client._auth_token()}"}
    cases = [
        ({**CONSUMPTION, "customerConsented": False}, 4000035),
        ({**CONSUMPTION, "sampleContentProvided": "no"}, 4000041),
        ({**CONSUMPTION, "deliveryStatus": "LOST"}, 4000036),
        ({**CONSUMPTION, "consumptionPercentage": 100_001}, 4000000),
        ({**CONSUMPTION, "extra": 1}, 4000000),
    ]
    for body, code in cases:
        async with apple.session.put(url, json=body, headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["errorCode"] == code
    assert apple.production.consumption_sent == []


async def test_consumption_for_an_unknown_transaction_is_not_found_without_fallback(
    apple: Apple,
) -> None:
    apple.sandbox.add_transaction(signed_tx("Sandbox", "2005", "2005"))
    with pytest.raises(PurchaseNotFound, match="TransactionIdNotFoundError"):
        await apple.client().send_consumption_information("2005", "Production", CONSUMPTION)
    assert len(apple.production.requests) == 1
    assert apple.sandbox.requests == []  # an action never tries the other environment


async def test_consumption_is_retried_after_a_transient_failure(apple: Apple) -> None:
    apple.production.add_transaction(signed_tx("Production", "2006", "2006"))
    apple.production.fail_next(503)
    apple.production.fail_next(500, 5000001)
    await apple.client().send_consumption_information("2006", "Production", CONSUMPTION)
    assert [r.status for r in apple.production.requests] == [503, 500, 200]
    assert len(apple.production.consumption_sent) == 1


async def test_consumption_failing_every_time_is_store_unavailable(apple: Apple) -> None:
    apple.production.add_transaction(signed_tx("Production", "2007", "2007"))
    apple.production.fail_next(429, 4290000, times=10)
    with pytest.raises(StoreUnavailable) as caught:
        await apple.client().send_consumption_information("2007", "Production", CONSUMPTION)
    assert caught.value.retryable
    assert len(apple.production.requests) == 3  # 1 + retries=2


async def test_apple_refusing_consumption_is_store_action_refused(apple: Apple) -> None:
    apple.production.add_transaction(signed_tx("Production", "2008", "2008"))
    apple.production.fail_next(400, 4000043)
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().send_consumption_information("2008", "Production", CONSUMPTION)
    assert caught.value.store_code == 4000043
    assert "InvalidTransactionNotConsumableError" in caught.value.message
    assert not caught.value.retryable
    assert len(apple.production.requests) == 1  # a refusal is not retried


async def test_wrong_credentials_are_credentials_rejected_not_a_refusal(apple: Apple) -> None:
    apple.production.add_transaction(signed_tx("Production", "2009", "2009"))
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(StoreCredentialsRejected):
        await apple.client(other).send_consumption_information("2009", "Production", CONSUMPTION)
    apple.production.fail_next(403)  # a 403 without an errorCode: credentials too
    with pytest.raises(StoreCredentialsRejected):
        await apple.client().send_consumption_information("2009", "Production", CONSUMPTION)
    assert apple.production.consumption_sent == []


async def test_an_action_needs_a_real_environment(apple: Apple) -> None:
    with pytest.raises(ValueError, match="Xcode"):
        await apple.client().send_consumption_information("2010", "Xcode", CONSUMPTION)
    assert apple.production.requests == apple.sandbox.requests == []


async def test_extend_renewal_date_sends_apples_body_and_returns_its_answer(
    apple: Apple,
) -> None:
    expires = NOW + dt.timedelta(days=20)
    apple.subscription("3001", expires=expires)
    seen: list[Any] = []
    apple.production.on_extension = seen.append
    answer = await apple.client().extend_renewal_date(
        "3001", "Production", days=7, reason_code=3, request_identifier="outage-2026-04-01"
    )
    assert answer == {
        "originalTransactionId": "3001",
        "webOrderLineItemId": "300110",
        "success": True,
        "effectiveDate": int((expires + dt.timedelta(days=7)).timestamp() * 1000),
    }
    [extension] = apple.production.extensions
    assert extension.original_transaction_id == "3001"
    assert extension.body == {
        "extendByDays": 7,
        "extendReasonCode": 3,
        "requestIdentifier": "outage-2026-04-01",
    }
    assert seen == [extension]
    [request] = apple.production.requests
    assert (request.method, request.path) == ("PUT", "/inApps/v1/subscriptions/extend/3001")


async def test_extension_request_identifier_is_idempotent_and_two_per_year(
    apple: Apple,
) -> None:
    apple.subscription("3002")
    client = apple.client()

    async def extend(identifier: str) -> dict[str, Any]:
        return await client.extend_renewal_date(
            "3002", "Production", days=5, reason_code=1, request_identifier=identifier
        )

    first = await extend("r-1")
    assert await extend("r-1") == first  # the same request again: the same answer
    second = await extend("r-2")
    assert second["effectiveDate"] - first["effectiveDate"] == 5 * 86_400_000
    assert await extend("r-1") == first  # a repeat is not a third extension
    assert [e.body["requestIdentifier"] for e in apple.production.extensions] == ["r-1", "r-2"]
    with pytest.raises(StoreActionRefused) as caught:
        await extend("r-3")
    assert caught.value.store_code == 4030005
    assert "SubscriptionMaxExtensionError" in caught.value.message
    assert len(apple.production.extensions) == 2
    apple.clock.advance(days=366)  # a year later both have aged out
    await extend("r-3")
    assert len(apple.production.extensions) == 3


@pytest.mark.parametrize(
    ("kwargs", "code", "name"),
    [
        ({"days": 0}, 4000009, "InvalidExtendByDaysError"),
        ({"days": 91}, 4000009, "InvalidExtendByDaysError"),
        ({"request_identifier": ""}, 4000011, "InvalidRequestIdentifierError"),
        ({"request_identifier": "x" * 129}, 4000011, "InvalidRequestIdentifierError"),
    ],
)
async def test_apple_refuses_extension_values(
    apple: Apple, kwargs: dict[str, Any], code: int, name: str
) -> None:
    apple.subscription("3003")
    args: dict[str, Any] = {"days": 3, "reason_code": 0, "request_identifier": "r"} | kwargs
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().extend_renewal_date("3003", "Production", **args)
    assert caught.value.store_code == code
    assert name in caught.value.message
    assert apple.production.extensions == []


async def test_a_reason_code_apples_model_does_not_know_is_refused_locally(
    apple: Apple,
) -> None:
    apple.subscription("3004")
    with pytest.raises(StoreRequestRejected):
        await apple.client().extend_renewal_date(
            "3004", "Production", days=3, reason_code=4, request_identifier="r"
        )
    assert apple.production.requests == []
    apple.production.fail_next(400, 4000010)  # as Apple would answer it
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().extend_renewal_date(
            "3004", "Production", days=3, reason_code=2, request_identifier="r"
        )
    assert caught.value.store_code == 4000010
    assert "InvalidExtendReasonCodeError" in caught.value.message


@pytest.mark.parametrize("status", [2, 3, 4, 5])  # expired, billing retry, grace, revoked
async def test_a_subscription_not_active_is_ineligible(apple: Apple, status: int) -> None:
    apple.subscription("3005", status=status)
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().extend_renewal_date(
            "3005", "Production", days=3, reason_code=1, request_identifier="r"
        )
    assert caught.value.store_code == 4030004
    assert "SubscriptionExtensionIneligibleError" in caught.value.message


async def test_a_family_shared_subscription_is_ineligible(apple: Apple) -> None:
    apple.subscription("3006", ownership="FAMILY_SHARED")
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().extend_renewal_date(
            "3006", "Production", days=3, reason_code=1, request_identifier="r"
        )
    assert caught.value.store_code == 4030007


async def test_extending_an_unknown_subscription_is_not_found(apple: Apple) -> None:
    apple.sandbox.add_transaction(signed_tx("Sandbox", "30071", "3007"))
    with pytest.raises(PurchaseNotFound, match="OriginalTransactionIdNotFoundError"):
        await apple.client().extend_renewal_date(
            "3007", "Production", days=3, reason_code=1, request_identifier="r"
        )
    assert apple.sandbox.requests == []
    with pytest.raises(PurchaseNotFound):  # not an Apple id: no request at all
        await apple.client().extend_renewal_date(
            "../3007", "Production", days=3, reason_code=1, request_identifier="r"
        )
    assert len(apple.production.requests) == 1


async def test_extension_is_retried_after_rate_limiting(apple: Apple) -> None:
    apple.subscription("3008")
    apple.production.fail_next(429, 4290000)
    answer = await apple.client().extend_renewal_date(
        "3008", "Production", days=3, reason_code=1, request_identifier="r"
    )
    assert answer["success"] is True
    assert [r.status for r in apple.production.requests] == [429, 200]
    assert len(apple.production.extensions) == 1


async def test_mass_extension_and_its_status(apple: Apple) -> None:
    apple.subscription("4001")
    apple.subscription("4002")
    apple.subscription("4003", status=2)  # expired: not extended
    apple.subscription("4004", product="com.example.other")
    apple.production.mass_polls_before_complete = 2
    client = apple.client()
    result = await client.mass_extend(
        "Production",
        product_id=PRODUCT,
        days=3,
        reason_code=3,
        request_identifier="mass-2026-04",
        storefront_country_codes=["USA", "DEU"],
    )
    assert result is None
    [mass] = apple.production.mass_extensions
    assert mass.body == {
        "extendByDays": 3,
        "extendReasonCode": 3,
        "requestIdentifier": "mass-2026-04",
        "productId": PRODUCT,
        "storefrontCountryCodes": ["USA", "DEU"],
    }
    await client.mass_extend(  # the same request again is not a second one
        "Production", product_id=PRODUCT, days=3, reason_code=3, request_identifier="mass-2026-04"
    )
    assert len(apple.production.mass_extensions) == 1
    for _ in range(2):
        status = await client.mass_extend_status("Production", PRODUCT, "mass-2026-04")
        assert status == {"requestIdentifier": "mass-2026-04", "complete": False}
    status = await client.mass_extend_status("Production", PRODUCT, "mass-2026-04")
    assert status == {
        "requestIdentifier": "mass-2026-04",
        "complete": True,
        "completeDate": int(NOW.timestamp() * 1000),
        "succeededCount": 2,
        "failedCount": 0,
    }
    paths = [(r.method, r.path) for r in apple.production.requests]
    assert paths[0] == ("POST", "/inApps/v1/subscriptions/extend/mass")
    assert paths[-1] == (
        "GET",
        f"/inApps/v1/subscriptions/extend/mass/{PRODUCT}/mass-2026-04",
    )


async def test_mass_extension_without_storefronts_leaves_the_field_out(apple: Apple) -> None:
    apple.subscription("4005")
    await apple.client().mass_extend(
        "Sandbox", product_id=PRODUCT, days=1, reason_code=0, request_identifier="m-1"
    )
    [mass] = apple.sandbox.mass_extensions
    assert "storefrontCountryCodes" not in mass.body
    assert mass.body["extendReasonCode"] == 0


@pytest.mark.parametrize("product", ["..", "a/b", "com.example.x?y", "", "é"])
async def test_unsafe_product_ids_never_reach_a_path(apple: Apple, product: str) -> None:
    client = apple.client()
    with pytest.raises(StoreRequestRejected):
        await client.mass_extend_status("Production", product, "m-1")
    with pytest.raises(StoreRequestRejected):
        await client.mass_extend(
            "Production", product_id=product, days=1, reason_code=0, request_identifier="m-1"
        )
    assert apple.production.requests == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"days": 100}, 4000009), ({"storefront_country_codes": ["us"]}, 4000028)],
)
async def test_apple_refuses_mass_extension_values(
    apple: Apple, kwargs: dict[str, Any], code: int
) -> None:
    args: dict[str, Any] = {"days": 3, "reason_code": 0, "request_identifier": "m"} | kwargs
    with pytest.raises(StoreActionRefused) as caught:
        await apple.client().mass_extend("Production", product_id=PRODUCT, **args)
    assert caught.value.store_code == code
    assert apple.production.mass_extensions == []


async def test_status_of_an_unknown_mass_extension_is_not_found(apple: Apple) -> None:
    with pytest.raises(PurchaseNotFound, match="StatusRequestNotFoundError"):
        await apple.client().mass_extend_status("Production", PRODUCT, "never-asked")


# --- Google --------------------------------------------------------------------------------

PKG = "com.example.app"
TOKEN = "opaque.token/with+odd=chars:and spaces"  # exercises URL quoting
ORDER = "GPA.3300-1111-2222-33333"


@pytest.fixture(scope="module")
def keys() -> GoogleTestKeys:
    return GoogleTestKeys.generate()


@pytest.fixture
async def play(keys: GoogleTestKeys) -> AsyncIterator[FakePlay]:
    fake = FakePlay(keys=keys, clock=Clock(NOW))
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def play_client(play: FakePlay, keys: GoogleTestKeys) -> AsyncIterator[PlayClient]:
    tokens = AccessTokens.from_service_account_info(keys.service_account_info(play.token_uri))
    async with aiohttp.ClientSession() as session:
        client = PlayClient(session, tokens, root_url=play.base_url, backoff=0.01, timeout=2.0)
        yield client
        client.close()


def _actions(play: FakePlay) -> list[Any]:
    return [r for r in play.api_requests() if r.method == "POST"]


async def test_defer_sends_googles_body_and_moves_the_expiry(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, TOKEN, subscription_purchase("active", now=NOW))
    before = await play_client.get_subscription(PKG, TOKEN)
    etag = before["etag"]
    answer = await play_client.defer_subscription(PKG, TOKEN, etag=etag, defer_seconds=3 * 86400)
    new_expiry = rfc3339(NOW + dt.timedelta(days=29 + 3))
    assert answer == {
        "itemExpiryTimeDetails": [{"productId": "premium_monthly", "expiryTime": new_expiry}]
    }
    [request] = _actions(play)
    assert request.path == (
        f"/androidpublisher/v3/applications/{PKG}/purchases/subscriptionsv2/tokens/{TOKEN}:defer"
    )
    assert request.body == {"deferralContext": {"etag": etag, "deferDuration": "259200s"}}
    after = await play_client.get_subscription(PKG, TOKEN)
    assert after["lineItems"][0]["expiryTime"] == new_expiry
    assert after["etag"] != etag
    assert len(play.deferrals) == 1
    with pytest.raises(StoreActionRefused) as caught:  # the old etag is stale now
        await play_client.defer_subscription(PKG, TOKEN, etag=etag, defer_seconds=60)
    assert caught.value.store_code == "aborted"
    assert "409" in caught.value.message
    assert TOKEN not in caught.value.message
    assert (await play_client.get_subscription(PKG, TOKEN))["lineItems"][0]["expiryTime"] == (
        new_expiry
    )


async def test_a_purchase_changed_since_the_read_refuses_the_deferral(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW))
    etag = (await play_client.get_subscription(PKG, "t"))["etag"]
    renewed = subscription_purchase("active", now=NOW, expiry=NOW + dt.timedelta(days=60))
    play.set_subscription(PKG, "t", renewed)  # a renewal: same builder etag, new content
    with pytest.raises(StoreActionRefused):
        await play_client.defer_subscription(PKG, "t", etag=etag, defer_seconds=60)
    assert play.deferrals == []


async def test_acknowledging_changes_the_etag(play: FakePlay, play_client: PlayClient) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW, acknowledged=False))
    etag = (await play_client.get_subscription(PKG, "t"))["etag"]
    await play_client.acknowledge_subscription(PKG, "premium_monthly", "t")
    assert (await play_client.get_subscription(PKG, "t"))["etag"] != etag


@pytest.mark.parametrize("state", ["expired", "on_hold", "pending"])
async def test_deferring_a_subscription_that_cannot_be_is_refused(
    play: FakePlay, play_client: PlayClient, state: str
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase(state, now=NOW))
    etag = (await play_client.get_subscription(PKG, "t"))["etag"]
    with pytest.raises(StoreActionRefused) as caught:
        await play_client.defer_subscription(PKG, "t", etag=etag, defer_seconds=60)
    assert caught.value.store_code == "failedPrecondition"
    assert play.deferrals == []


async def test_deferring_unknown_or_gone_tokens_is_not_found(
    play: FakePlay, play_client: PlayClient
) -> None:
    with pytest.raises(PurchaseNotFound):
        await play_client.defer_subscription(PKG, "unknown", etag="e", defer_seconds=60)
    play.set_subscription(PKG, "old", subscription_purchase("expired", now=NOW))
    play.gone.add("old")
    with pytest.raises(PurchaseNotFound):
        await play_client.defer_subscription(PKG, "old", etag="etag-expired", defer_seconds=60)


@pytest.mark.parametrize(
    ("etag", "seconds"), [("", 60), ("e", 0), ("e", -5), ("e", 1.5), ("e", True)]
)
async def test_bad_deferral_arguments_never_reach_google(
    play: FakePlay, play_client: PlayClient, etag: str, seconds: Any
) -> None:
    with pytest.raises(ValueError):
        await play_client.defer_subscription(PKG, "t", etag=etag, defer_seconds=seconds)
    assert _actions(play) == []


async def test_the_fake_checks_deferral_bodies_field_by_field(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW))
    etag = (await play_client.get_subscription(PKG, "t"))["etag"]
    url = (
        f"{play.base_url}androidpublisher/v3/applications/{PKG}"
        "/purchases/subscriptionsv2/tokens/t:defer"
    )
    headers = await play_client._headers()
    bad = [
        {},
        {"deferralContext": {"etag": etag}},
        {"deferralContext": {"etag": etag, "deferDuration": "3d"}},
        {"deferralContext": {"etag": etag, "deferDuration": 60}},
        {"deferralContext": {"etag": etag, "deferDuration": "60s", "validateOnly": "yes"}},
        {"deferralContext": {"etag": etag, "deferDuration": "60s", "desiredExpiry": 1}},
        {"deferralContext": {"etag": etag, "deferDuration": "60s"}, "extra": {}},
    ]
    for body in bad:
        async with play_client._session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 400, body
            assert (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"
    dry = {"deferralContext": {"etag": etag, "deferDuration": "60s", "validateOnly": True}}
    async with play_client._session.post(url, json=dry, headers=headers) as resp:
        assert resp.status == 200
        [detail] = (await resp.json())["itemExpiryTimeDetails"]
    assert detail["expiryTime"] == rfc3339(NOW + dt.timedelta(days=29, seconds=60))
    assert play.deferrals == []  # a dry run changes nothing
    assert (await play_client.get_subscription(PKG, "t"))["etag"] == etag


async def test_a_deferral_is_retried_after_a_transient_failure(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW))
    etag = (await play_client.get_subscription(PKG, "t"))["etag"]
    play.fail(503, times=2, path_contains=":defer")
    await play_client.defer_subscription(PKG, "t", etag=etag, defer_seconds=60)
    assert len(_actions(play)) == 3
    assert len(play.deferrals) == 1


@pytest.mark.parametrize(("status", "code"), [(409, "aborted"), (412, "conditionNotMet")])
async def test_google_refusals_are_store_action_refused(
    play: FakePlay, play_client: PlayClient, status: int, code: str
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW))
    play.fail(status, path_contains=":defer")
    with pytest.raises(StoreActionRefused) as caught:
        await play_client.defer_subscription(PKG, "t", etag="etag-active", defer_seconds=60)
    assert caught.value.store_code == code
    assert len(_actions(play)) == 1  # not retried


async def test_denied_access_stays_play_access_denied(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, "t", subscription_purchase("active", now=NOW))
    play.deny = True
    with pytest.raises(PlayAccessDenied):
        await play_client.revoke_subscription(PKG, "t", refund="full")
    with pytest.raises(PlayAccessDenied):
        await play_client.refund_order(PKG, ORDER, revoke=False)
    assert play.revocations == play.refunds == []


@pytest.mark.parametrize(
    ("refund", "wire"), [("full", "fullRefund"), ("prorated", "proratedRefund")]
)
async def test_revoke_ends_access_now(
    play: FakePlay, play_client: PlayClient, refund: str, wire: str
) -> None:
    play.set_subscription(PKG, TOKEN, subscription_purchase("active", now=NOW))
    etag = (await play_client.get_subscription(PKG, TOKEN))["etag"]
    await play_client.revoke_subscription(PKG, TOKEN, refund=refund)
    [request] = _actions(play)
    assert request.path.endswith(f"/purchases/subscriptionsv2/tokens/{TOKEN}:revoke")
    assert request.body == {"revocationContext": {wire: {}}}
    assert play.revocations == [
        {"package": PKG, "token": TOKEN, "refund": wire, "body": request.body}
    ]
    after = await play_client.get_subscription(PKG, TOKEN)
    assert after["subscriptionState"] == "SUBSCRIPTION_STATE_EXPIRED"
    assert after["lineItems"][0]["expiryTime"] == rfc3339(NOW)
    assert after["lineItems"][0]["autoRenewingPlan"]["autoRenewEnabled"] is False
    assert after["etag"] != etag
    voided = await play_client.list_voided_purchases(PKG, start=NOW - dt.timedelta(days=1), end=NOW)
    [item] = voided["voidedPurchases"]
    assert (item["purchaseToken"], item["orderId"], item["voidedSource"]) == (TOKEN, ORDER, 1)
    with pytest.raises(StoreActionRefused) as caught:  # nothing left to revoke
        await play_client.revoke_subscription(PKG, TOKEN, refund=refund)
    assert caught.value.store_code == "failedPrecondition"


async def test_an_unknown_refund_type_never_reaches_google(
    play: FakePlay, play_client: PlayClient
) -> None:
    with pytest.raises(ValueError, match="partial"):
        await play_client.revoke_subscription(PKG, "t", refund="partial")
    assert _actions(play) == []


async def test_revoking_an_unknown_token_is_not_found(
    play: FakePlay, play_client: PlayClient
) -> None:
    with pytest.raises(PurchaseNotFound):
        await play_client.revoke_subscription(PKG, "unknown", refund="full")


async def test_refund_with_revoke_voids_a_one_time_product(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_product(PKG, "lifetime_unlock", "p-tok", product_purchase(purchase_time=NOW))
    await play_client.refund_order(PKG, "GPA.3300-4444-5555-66666", revoke=True)
    [request] = _actions(play)
    assert request.path == (
        f"/androidpublisher/v3/applications/{PKG}/orders/GPA.3300-4444-5555-66666:refund"
    )
    assert request.body is None
    assert play.refunds == [
        {
            "package": PKG,
            "order_id": "GPA.3300-4444-5555-66666",
            "revoke": True,
            "query": {"revoke": "true"},
        }
    ]
    product = await play_client.get_product(PKG, "lifetime_unlock", "p-tok")
    assert product["purchaseState"] == 1
    with pytest.raises(StoreActionRefused):  # refunded already
        await play_client.refund_order(PKG, "GPA.3300-4444-5555-66666", revoke=True)


async def test_refund_without_revoke_keeps_access(play: FakePlay, play_client: PlayClient) -> None:
    play.set_product(PKG, "lifetime_unlock", "p-tok", product_purchase(purchase_time=NOW))
    play.set_subscription(PKG, "s-tok", subscription_purchase("active", now=NOW))
    await play_client.refund_order(PKG, "GPA.3300-4444-5555-66666", revoke=False)
    await play_client.refund_order(PKG, ORDER, revoke=False)
    assert [(r["order_id"], r["revoke"], r["query"]) for r in play.refunds] == [
        ("GPA.3300-4444-5555-66666", False, {"revoke": "false"}),
        (ORDER, False, {"revoke": "false"}),
    ]
    assert (await play_client.get_product(PKG, "lifetime_unlock", "p-tok"))["purchaseState"] == 0
    sub = await play_client.get_subscription(PKG, "s-tok")
    assert sub["subscriptionState"] == "SUBSCRIPTION_STATE_ACTIVE"


async def test_refund_with_revoke_ends_a_subscription(
    play: FakePlay, play_client: PlayClient
) -> None:
    play.set_subscription(PKG, "s-tok", subscription_purchase("active", now=NOW))
    await play_client.refund_order(PKG, ORDER, revoke=True)
    sub = await play_client.get_subscription(PKG, "s-tok")
    assert sub["subscriptionState"] == "SUBSCRIPTION_STATE_EXPIRED"
    assert sub["lineItems"][0]["expiryTime"] == rfc3339(NOW)


async def test_refund_refusals_and_unknown_orders(play: FakePlay, play_client: PlayClient) -> None:
    bought = NOW - dt.timedelta(days=4 * 365)
    play.set_product(
        PKG, "lifetime_unlock", "p-old", product_purchase(purchase_time=bought, order_id="GPA.old")
    )
    with pytest.raises(StoreActionRefused) as caught:
        await play_client.refund_order(PKG, "GPA.old", revoke=True)
    assert caught.value.store_code == "failedPrecondition"
    with pytest.raises(PurchaseNotFound):
        await play_client.refund_order(PKG, "GPA.unknown", revoke=False)
    assert play.refunds == []
