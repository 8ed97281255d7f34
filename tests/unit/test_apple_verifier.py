"""AppleVerifier: accept/reject matrix against a local test CA, error translation, raw fields."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from typing import Any

import pytest
from appstoreserverlibrary.signed_data_verifier import VerificationException, VerificationStatus
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from receipts.apple.verifier import AppleVerifier, translate_verification_error
from receipts.errors import (
    MalformedPayload,
    StoreUnavailable,
    VerificationFailed,
    WrongApp,
    WrongEnvironment,
)
from simulators.apple_ca import (
    TestCA,
    notification_payload,
    renewal_payload,
    transaction_payload,
)

BUNDLE = "com.example.app"
APP_ID = 1234567890
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.generate()


@pytest.fixture(scope="module")
def verifier(ca: TestCA) -> AppleVerifier:
    return AppleVerifier(BUNDLE, APP_ID, ["Production", "Sandbox"], [ca.root_der], False)


def _tx(env: str = "Sandbox", **extra: Any) -> dict[str, Any]:
    return transaction_payload(
        bundle_id=extra.pop("bundle_id", BUNDLE),
        environment=env,
        transaction_id="2000000001",
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        purchase_date=NOW,
        signed_date=NOW,
        expires_date=NOW + dt.timedelta(days=30),
        **extra,
    )


def _note(ca: TestCA, env: str = "Sandbox", **extra: Any) -> dict[str, Any]:
    return notification_payload(
        notification_type=extra.pop("notification_type", "SUBSCRIBED"),
        subtype=extra.pop("subtype", "INITIAL_BUY"),
        bundle_id=extra.pop("bundle_id", BUNDLE),
        environment=env,
        app_apple_id=extra.pop("app_apple_id", APP_ID),
        signed_date=NOW,
        signed_transaction=extra.pop("signed_transaction", ca.sign(_tx(env))),
        signed_renewal=ca.sign(
            renewal_payload(
                environment=env,
                original_transaction_id="2000000000",
                product_id="premium.monthly",
                signed_date=NOW,
            )
        ),
        status=1,
        **extra,
    )


@pytest.mark.parametrize("env", ["Production", "Sandbox"])
async def test_valid_notification_with_nested_items(
    ca: TestCA, verifier: AppleVerifier, env: str
) -> None:
    note = await verifier.verify_notification(ca.sign(_note(ca, env)))
    assert note.notification_type == "SUBSCRIBED"
    assert note.subtype == "INITIAL_BUY"
    assert note.environment == env
    assert note.signed_at == NOW
    assert note.transaction is not None
    assert note.transaction.payload.transactionId == "2000000001"
    assert note.renewal is not None
    assert note.renewal.payload.originalTransactionId == "2000000000"


async def test_unknown_subtype_and_fields_survive_in_raw(
    ca: TestCA, verifier: AppleVerifier
) -> None:
    payload = notification_payload(
        notification_type="EXTERNAL_PURCHASE_TOKEN",
        subtype="CREATED",
        bundle_id=BUNDLE,
        environment="Sandbox",
        app_apple_id=APP_ID,
        signed_date=NOW,
        block="externalPurchaseToken",
        externalPurchaseId="SANDBOX_abc",
        tokenCreationDate=1,
        tokenType="SERVICES",
    )
    note = await verifier.verify_notification(ca.sign(payload))
    assert note.payload.subtype is None  # the library enum does not know CREATED
    assert note.subtype == "CREATED"
    assert note.environment == "Sandbox"
    assert note.raw["externalPurchaseToken"]["tokenType"] == "SERVICES"
    assert note.transaction is None


async def test_transaction_and_renewal_info(ca: TestCA, verifier: AppleVerifier) -> None:
    tx = await verifier.verify_transaction(
        ca.sign(_tx("Production", previousOriginalTransactionId="1"))
    )
    assert tx.payload.environment is not None
    assert tx.raw["previousOriginalTransactionId"] == "1"
    ren = await verifier.verify_renewal_info(
        ca.sign(
            renewal_payload(
                environment="Sandbox", original_transaction_id="9", product_id="p", signed_date=NOW
            )
        )
    )
    assert ren.payload.originalTransactionId == "9"
    assert [
        t.payload.transactionId for t in await verifier.verify_transactions([ca.sign(_tx())] * 2)
    ] == [
        "2000000001",
        "2000000001",
    ]


def _reject_cases(ca: TestCA) -> list[tuple[str, str, str, type[Exception]]]:
    other = TestCA.generate(name="other")
    forger = ec.generate_private_key(ec.SECP256R1())
    expired = TestCA.generate(
        leaf_not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        leaf_not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    tx = ca.sign(_tx())
    header, _body, sig = tx.split(".")
    return [
        ("forged", "tx", ca.sign(_tx(), key=forger), VerificationFailed),
        (
            "tampered",
            "tx",
            f"{header}.{ca.sign(_tx('Sandbox', productId='x')).split('.')[1]}.{sig}",
            VerificationFailed,
        ),
        ("wrong root", "tx", other.sign(_tx()), VerificationFailed),
        ("expired leaf", "tx", expired.sign(_tx()), VerificationFailed),
        ("wrong bundle", "tx", ca.sign(_tx(bundle_id="com.other")), WrongApp),
        ("wrong app id", "note", ca.sign(_note(ca, "Production", app_apple_id=1)), WrongApp),
        ("unaccepted env", "tx", ca.sign(_tx("Xcode")), WrongEnvironment),
        ("unknown env", "note", ca.sign(_note(ca, "Staging")), WrongEnvironment),
        ("forged unaccepted env", "tx", ca.sign(_tx("Xcode"), key=forger), VerificationFailed),
        (
            "nested tx forged",
            "note",
            ca.sign(_note(ca, signed_transaction=ca.sign(_tx(), key=forger))),
            VerificationFailed,
        ),
        (
            "nested tx other env",
            "note",
            ca.sign(_note(ca, signed_transaction=ca.sign(_tx("Production")))),
            WrongEnvironment,
        ),
        (
            "no identity block",
            "note",
            ca.sign({"notificationType": "TEST", "signedDate": int(NOW.timestamp() * 1000)}),
            WrongApp,
        ),
        ("garbage", "tx", "not a jws", MalformedPayload),
        ("bad base64", "note", "a.b!.c", MalformedPayload),
        ("not an object", "tx", "eyJhbGciOiJFUzI1NiJ9.WzFd.AA", MalformedPayload),
        ("bad shape", "tx", ca.sign(_tx(quantity={"x": 1})), MalformedPayload),
    ]


async def test_reject_matrix(ca: TestCA, verifier: AppleVerifier) -> None:
    for name, kind, jws, error in _reject_cases(ca):
        call = verifier.verify_transaction if kind == "tx" else verifier.verify_notification
        with pytest.raises(error) as caught:
            await call(jws)
        assert type(caught.value) is error, name
        assert jws not in str(caught.value)


async def test_xcode_is_unverified_only_when_configured(ca: TestCA) -> None:
    xcode = AppleVerifier(
        BUNDLE, None, ["Sandbox", "Xcode"], [ca.root_der], False, allow_unsigned=True
    )
    forger = ec.generate_private_key(ec.SECP256R1())
    tx = await xcode.verify_transaction(ca.sign(_tx("Xcode"), key=forger))
    assert tx.payload.rawEnvironment == "Xcode"


def test_pem_roots_are_accepted(ca: TestCA) -> None:
    pem = ca.root.public_bytes(serialization.Encoding.PEM)
    verifier = AppleVerifier(BUNDLE, None, ["Sandbox"], [pem], False)
    assert verifier.verify_transaction_sync(ca.sign(_tx())).payload.bundleId == BUNDLE


def test_configuration_errors(ca: TestCA) -> None:
    with pytest.raises(ValueError, match="app_apple_id"):
        AppleVerifier(BUNDLE, None, ["Production"], [ca.root_der], False)
    with pytest.raises(ValueError, match="environments"):
        AppleVerifier(BUNDLE, None, ["Staging"], [ca.root_der], False)
    with pytest.raises(ValueError, match="root_certificates"):
        AppleVerifier(BUNDLE, None, ["Sandbox"], [], False)


@pytest.mark.parametrize("unsigned", ["Xcode", "LocalTesting"])
def test_unsigned_environments_need_allow_unsigned_and_never_with_production(
    ca: TestCA, unsigned: str
) -> None:
    with pytest.raises(ValueError, match="allow_xcode"):
        AppleVerifier(BUNDLE, None, ["Sandbox", unsigned], [ca.root_der], False)
    with pytest.raises(ValueError, match="Production"):
        AppleVerifier(
            BUNDLE, APP_ID, ["Production", unsigned], [ca.root_der], False, allow_unsigned=True
        )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (VerificationStatus.INVALID_APP_IDENTIFIER, WrongApp),
        (VerificationStatus.INVALID_ENVIRONMENT, WrongEnvironment),
        (VerificationStatus.RETRYABLE_VERIFICATION_FAILURE, StoreUnavailable),
        (VerificationStatus.VERIFICATION_FAILURE, VerificationFailed),
        (VerificationStatus.INVALID_CHAIN_LENGTH, VerificationFailed),
        (VerificationStatus.INVALID_CERTIFICATE, VerificationFailed),
    ],
)
def test_status_translation(status: VerificationStatus, error: type[Exception]) -> None:
    translated = translate_verification_error(VerificationException(status))
    assert type(translated) is error


class _NoThreads(concurrent.futures.Executor):
    """An executor that records (and refuses) being used."""

    def __init__(self) -> None:
        self.used = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.used += 1
        raise RuntimeError("offloaded")


async def test_only_online_checks_offload(ca: TestCA) -> None:
    """Offline verification is CPU under the GIL: it runs on the calling thread, whether or
    not `inline` says so (`receiptd replay` does); with online checks (blocking OCSP I/O) a
    serving process offloads to its executor (issue 24)."""
    executor = _NoThreads()
    for inline in (True, False):
        verifier = AppleVerifier(
            BUNDLE, APP_ID, ["Sandbox"], [ca.root_der], False, executor, inline=inline
        )
        verified = await verifier.verify_transaction(ca.sign(_tx("Sandbox")))
        assert verified.payload.bundleId == BUNDLE
    assert executor.used == 0
    online = AppleVerifier(BUNDLE, APP_ID, ["Sandbox"], [ca.root_der], True, executor)
    with pytest.raises(RuntimeError, match="offloaded"):
        await online.verify_transaction(ca.sign(_tx("Sandbox")))
    assert executor.used == 1
