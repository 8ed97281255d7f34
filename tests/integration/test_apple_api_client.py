"""AppStoreServerClient against two fake App Store Server APIs over real HTTP on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from entitlements.model import EventKind, Status
from receipts.apple.server_api import (
    AppStoreServerClient,
    StoreCredentialsRejected,
    make_auth_token,
    transaction_id_from_receipt,
)
from receipts.apple.verifier import AppleVerifier
from receipts.errors import (
    MalformedPayload,
    PurchaseNotFound,
    StoreUnavailable,
    VerificationFailed,
)
from simulators.apple_ca import TestCA, renewal_payload, transaction_payload
from tests.fakes.fake_appstore import FakeAppStore, app_receipt

BUNDLE = "com.example.app"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
NOW = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)

_CA = TestCA.generate()
_API_KEY = ec.generate_private_key(ec.SECP256R1())
_API_PEM = _API_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def tx(env: str, n: int, original: int = 1000, **extra: Any) -> str:
    return _CA.sign(
        transaction_payload(
            bundle_id=BUNDLE,
            environment=env,
            transaction_id=str(original + n),
            original_transaction_id=str(original),
            product_id="premium.monthly",
            purchase_date=NOW + dt.timedelta(days=30 * n),
            signed_date=NOW + dt.timedelta(days=400),
            expires_date=NOW + dt.timedelta(days=30 * (n + 1)),
            **extra,
        )
    )


@dataclass
class Stores:
    production: FakeAppStore
    sandbox: FakeAppStore
    session: aiohttp.ClientSession
    verifier: AppleVerifier

    def client(self, private_key: bytes = _API_PEM, timeout: float = 5.0) -> AppStoreServerClient:
        return AppStoreServerClient(
            self.session,
            self.verifier,
            issuer_id=ISSUER,
            key_id=KEY_ID,
            private_key=private_key,
            bundle_id=BUNDLE,
            production_url=self.production.url,
            sandbox_url=self.sandbox.url,
            timeout=timeout,
            retries=2,
            backoff=0.01,
        )


@pytest.fixture
async def stores() -> AsyncIterator[Stores]:
    fakes = [
        FakeAppStore(_API_KEY.public_key(), KEY_ID, ISSUER, BUNDLE, environment=env)
        for env in ("Production", "Sandbox")
    ]
    for fake in fakes:
        await fake.start()
    verifier = AppleVerifier(BUNDLE, 1234567890, ["Production", "Sandbox"], [_CA.root_der], False)
    async with aiohttp.ClientSession() as session:
        yield Stores(fakes[0], fakes[1], session, verifier)
    for fake in fakes:
        await fake.stop()


async def test_transaction_info_sends_a_valid_token(stores: Stores) -> None:
    stores.production.add_transaction(tx("Production", 1))
    got = await stores.client().get_transaction_info("1001")
    assert got.payload.transactionId == "1001"
    [request] = stores.production.requests
    assert request.path == "/inApps/v1/transactions/1001"
    assert request.claims is not None
    assert request.claims["bid"] == BUNDLE
    assert request.claims["aud"] == "appstoreconnect-v1"
    assert 0 < request.claims["exp"] - request.claims["iat"] <= 3600
    assert stores.sandbox.requests == []


async def test_sandbox_fallback_on_not_found(stores: Stores) -> None:
    stores.sandbox.add_transaction(tx("Sandbox", 1))
    got = await stores.client().get_transaction_info("1001")
    assert got.payload.rawEnvironment == "Sandbox"
    assert len(stores.production.requests) == 1
    assert len(stores.sandbox.requests) == 1


async def test_sandbox_hint_goes_to_sandbox_first(stores: Stores) -> None:
    stores.sandbox.add_transaction(tx("Sandbox", 1))
    await stores.client().get_transaction_info("1001", environment_hint="Sandbox")
    assert stores.production.requests == []
    # A wrong hint still finds a production purchase.
    stores.production.add_transaction(tx("Production", 2))
    got = await stores.client().get_transaction_info("1002", environment_hint="Sandbox")
    assert got.payload.rawEnvironment == "Production"


async def test_unknown_everywhere_is_not_found(stores: Stores) -> None:
    with pytest.raises(PurchaseNotFound):
        await stores.client().get_transaction_info("424242")
    assert len(stores.production.requests) == len(stores.sandbox.requests) == 1
    with pytest.raises(PurchaseNotFound):
        await stores.client().get_transaction_info("../etc")
    assert len(stores.production.requests) == 1  # never sent


async def test_history_reads_every_page(stores: Stores) -> None:
    for n in range(45):
        stores.production.add_transaction(tx("Production", n))
    history = await stores.client().get_transaction_history("1000")
    assert [t.payload.transactionId for t in history] == [str(1000 + n) for n in range(45)]
    pages = [r for r in stores.production.requests if r.path.startswith("/inApps/v2/history/")]
    assert len(pages) == 3
    assert "revision" not in pages[0].query
    assert pages[1].query["revision"]
    assert pages[2].query["revision"]


async def test_retry_on_503_and_429_then_success(stores: Stores) -> None:
    stores.production.add_transaction(tx("Production", 1))
    stores.production.fail_next(503)
    stores.production.fail_next(429, 4290000)
    got = await stores.client().get_transaction_info("1001")
    assert got.payload.transactionId == "1001"
    assert [r.status for r in stores.production.requests] == [503, 429, 200]


async def test_persistent_failure_is_store_unavailable(stores: Stores) -> None:
    stores.production.add_transaction(tx("Production", 1))
    stores.production.fail_next(500, 5000001, times=10)
    with pytest.raises(StoreUnavailable) as caught:
        await stores.client().get_transaction_info("1001")
    assert caught.value.retryable is True
    assert len(stores.production.requests) == 3  # 1 + 2 retries


async def test_timeout_is_store_unavailable(stores: Stores) -> None:
    stores.production.add_transaction(tx("Production", 1))
    stores.production.delay = 0.3
    with pytest.raises(StoreUnavailable):
        await stores.client(timeout=0.05).get_transaction_info("1001")


async def test_rejected_credentials(stores: Stores) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stores.production.add_transaction(tx("Production", 1))
    with pytest.raises(StoreCredentialsRejected) as caught:
        await stores.client(private_key=other).get_transaction_info("1001")
    assert caught.value.retryable is False
    assert len(stores.production.requests) == 1


async def test_forged_item_from_the_api_is_rejected(stores: Stores) -> None:
    forged = _CA.sign(
        transaction_payload(
            bundle_id=BUNDLE,
            environment="Production",
            transaction_id="1001",
            original_transaction_id="1000",
            product_id="p",
            purchase_date=NOW,
            signed_date=NOW,
        ),
        key=ec.generate_private_key(ec.SECP256R1()),
    )
    stores.production.add_transaction(forged)
    with pytest.raises(VerificationFailed):
        await stores.client().get_transaction_info("1001")


async def test_fetch_purchase_events(stores: Stores) -> None:
    for n in range(3):
        stores.production.add_transaction(tx("Production", n))
    stores.production.add_transaction(tx("Production", 0, original=5000, type="Non-Consumable"))
    latest = tx("Production", 2)
    renewal = _CA.sign(
        renewal_payload(
            environment="Production",
            original_transaction_id="1000",
            product_id="premium.monthly",
            signed_date=NOW + dt.timedelta(days=400),
            auto_renew=False,
            isInBillingRetryPeriod=True,
            gracePeriodExpiresDate=1,
        )
    )
    stores.production.set_status(latest, renewal, 4)
    events = await stores.client().fetch_purchase_events("1002")
    assert events[0].transaction is not None
    assert events[0].transaction.transaction_id == "1002"
    assert sorted({e.purchase_id for e in events}) == ["1000", "5000"]
    history_ids = [e.transaction.transaction_id for e in events[1:5] if e.transaction]
    assert history_ids == ["1000", "1001", "1002", "5000"]
    [status] = [e for e in events if e.status is not None]
    assert status.status is Status.GRACE_PERIOD
    assert status.kind is EventKind.STATE_REFRESHED
    assert status.renewal is not None
    assert status.renewal.will_renew is False
    assert status.renewal.in_billing_retry is True
    assert all(e.is_sandbox is False for e in events)


def test_auth_token_shape() -> None:
    token = make_auth_token(
        issuer_id=ISSUER, key_id=KEY_ID, private_key=_API_PEM, bundle_id=BUNDLE, now=1_700_000_000
    )
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(
        token,
        _API_KEY.public_key(),
        algorithms=["ES256"],
        audience="appstoreconnect-v1",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": ISSUER,
        "iat": 1_700_000_000,
        "exp": 1_700_000_300,
        "aud": "appstoreconnect-v1",
        "bid": BUNDLE,
    }
    with pytest.raises(ValueError, match="60 minutes"):
        make_auth_token(
            issuer_id=ISSUER,
            key_id=KEY_ID,
            private_key=_API_PEM,
            bundle_id=BUNDLE,
            lifetime_seconds=3601,
        )


def test_receipt_transaction_id() -> None:
    assert transaction_id_from_receipt(app_receipt(["2000000123", "2000000456"])) == "2000000123"
    assert transaction_id_from_receipt(app_receipt(["77"], original=True)) == "77"
    with pytest.raises(PurchaseNotFound):
        transaction_id_from_receipt(app_receipt([]))
    for bad in ("not base64!", "aGVsbG8=", ""):
        with pytest.raises(MalformedPayload):
            transaction_id_from_receipt(bad)
