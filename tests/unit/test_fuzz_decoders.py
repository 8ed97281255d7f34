"""Bad input at scale: hypothesis fuzzing of the decoders that face the internet.

- Google: `parse_push` on arbitrary bytes and on envelopes with arbitrary fields raises
  nothing but `MalformedPayload`; `classify` on arbitrary JSON objects raises nothing at all
  (unusable input is POISON); the adapter's whole parse (after authentication) likewise.
- Apple: `signed_payload_of` on arbitrary bytes, `peek` on arbitrary strings, and the
  verifier on arbitrary strings, on mangled real JWS (a flipped, cut, dropped or swapped
  segment; another payload under the real signature; a forged or broken x5c) and on
  arbitrary JSON signed by the trusted test CA, raise nothing but `receipts.errors` classes.

Runs are derandomized (the same examples every run: a bounded, reproducible CI step).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipts.apple.adapter import signed_payload_of
from receipts.apple.verifier import AppleVerifier, peek
from receipts.errors import MalformedPayload, ReceiptError
from receipts.google.adapter import GooglePlayStore
from receipts.google.notifications import Category, classify, parse_push
from simulators.apple_ca import TestCA, notification_payload, renewal_payload, transaction_payload

PKG = "com.example.app"
BUNDLE = "com.example.app"
APP_ID = 1234567890
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- Google ----------------------------------------------------------------------------------


# The fields a DeveloperNotification has, each with arbitrary JSON or a plausible value.
def _maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, json_values)


blocks = st.fixed_dictionaries(
    {},
    optional={
        "notificationType": _maybe(st.integers(-3, 30)),
        "purchaseToken": _maybe(st.text(min_size=1, max_size=20)),
        "subscriptionId": _maybe(st.text(max_size=20)),
        "sku": _maybe(st.text(max_size=20)),
        "orderId": _maybe(st.text(max_size=20)),
        "productType": _maybe(st.integers(-1, 4)),
        "refundType": _maybe(st.integers(-1, 4)),
        "version": _maybe(st.just("1.0")),
    },
)
developer_notifications = st.fixed_dictionaries(
    {},
    optional={
        "packageName": _maybe(st.just(PKG)),
        "eventTimeMillis": _maybe(
            st.one_of(st.integers(-(2**63), 2**63).map(str), st.integers(-(2**63), 2**63))
        ),
        "version": _maybe(st.just("1.0")),
        "subscriptionNotification": _maybe(blocks),
        "oneTimeProductNotification": _maybe(blocks),
        "voidedPurchaseNotification": _maybe(blocks),
        "testNotification": _maybe(blocks),
        "pendingRefundReviewNotification": _maybe(blocks),
    },
)
data_fields = st.one_of(
    json_values,
    developer_notifications.map(lambda n: b64(_json_bytes(n))),
    json_values.map(lambda v: b64(_json_bytes(v))),
    st.binary(max_size=40).map(b64),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "message": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "messageId": _maybe(st.text(min_size=1, max_size=12)),
                    "message_id": _maybe(st.text(min_size=1, max_size=12)),
                    "publishTime": _maybe(st.datetimes().map(lambda d: d.isoformat() + "Z")),
                    "data": data_fields,
                    "attributes": json_values,
                    "deliveryAttempt": json_values,
                },
            )
        ),
        "subscription": json_values,
        "deliveryAttempt": json_values,
    },
)
push_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_json_bytes),
    envelopes.map(_json_bytes),
)


@FUZZ
@given(push_bodies)
def test_parse_push_raises_only_malformed_payload(body: bytes) -> None:
    try:
        message = parse_push(body)
    except MalformedPayload:
        return
    assert isinstance(message.message_id, str)
    assert message.message_id
    assert (message.notification is None) != (message.poison_reason is None)


@FUZZ
@given(st.one_of(developer_notifications, st.dictionaries(st.text(max_size=12), json_values)))
def test_classify_never_raises(notification: dict[str, Any]) -> None:
    n = classify(notification, {PKG})
    if n.category is Category.POISON:
        assert n.poison_reason
    else:
        assert n.package_name == PKG
    n.journal_names  # noqa: B018 - computed for the journal of every message: must not raise


@pytest.fixture(scope="module")
def play_store() -> GooglePlayStore:
    # Only the parse is fuzzed (authentication and the Play API are not reached).
    return GooglePlayStore(
        verifier=None,  # type: ignore[arg-type]
        play=None,  # type: ignore[arg-type]
        acks=None,  # type: ignore[arg-type]
        package_names=frozenset({PKG}),
        consumable_products=frozenset(),
        known_products=frozenset(),
    )


@FUZZ
@given(body=envelopes.map(_json_bytes))
def test_play_adapter_parse_raises_only_malformed_payload(
    play_store: GooglePlayStore, body: bytes
) -> None:
    try:
        inbound = play_store._parse(body)
    except MalformedPayload:
        return
    assert inbound.message_id
    assert inbound.settled is not None or inbound.verified is not None


# --- Apple -----------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(_json_bytes)))
def test_signed_payload_of_raises_only_malformed_payload(body: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        assert isinstance(signed_payload_of(body), str)


jws_like = st.one_of(
    st.text(max_size=80),
    st.lists(st.text(alphabet="ABCDEFabcdef0123456789-_=+/.", max_size=30), max_size=5).map(
        ".".join
    ),
    st.tuples(json_values, json_values).map(
        lambda hp: (
            ".".join(base64.urlsafe_b64encode(_json_bytes(x)).decode().rstrip("=") for x in hp)
            + ".c2ln"
        )
    ),
)


@FUZZ
@given(jws_like)
def test_peek_raises_only_malformed_payload(jws: str) -> None:
    with contextlib.suppress(MalformedPayload):
        assert isinstance(peek(jws), dict)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.generate()


@pytest.fixture(scope="module")
def verifier(ca: TestCA) -> AppleVerifier:
    return AppleVerifier(BUNDLE, APP_ID, ["Production", "Sandbox"], [ca.root_der], False)


@pytest.fixture(scope="module")
def real_jws(ca: TestCA) -> str:
    """A real notification (nested transaction and renewal info) signed by the trusted CA."""
    tx = transaction_payload(
        bundle_id=BUNDLE,
        environment="Sandbox",
        transaction_id="2000000001",
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        purchase_date=NOW,
        signed_date=NOW,
        expires_date=NOW + dt.timedelta(days=30),
    )
    renewal = renewal_payload(
        environment="Sandbox",
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        signed_date=NOW,
    )
    note = notification_payload(
        notification_type="SUBSCRIBED",
        subtype="INITIAL_BUY",
        bundle_id=BUNDLE,
        environment="Sandbox",
        app_apple_id=APP_ID,
        signed_date=NOW,
        signed_transaction=ca.sign(tx),
        signed_renewal=ca.sign(renewal),
    )
    return ca.sign(note)


def verifies_or_refuses(verifier: AppleVerifier, jws: str) -> None:
    """The property: verified, or one of our errors. Anything else is a bug."""
    with contextlib.suppress(ReceiptError):
        verifier.verify_notification_sync(jws)


def test_the_real_jws_verifies(verifier: AppleVerifier, real_jws: str) -> None:
    assert verifier.verify_notification_sync(real_jws).notification_uuid


@FUZZ
@given(jws_like)
def test_verifier_on_arbitrary_strings(verifier: AppleVerifier, jws: str) -> None:
    verifies_or_refuses(verifier, jws)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@st.composite
def mangled(draw: st.DrawFn, real: str) -> str:
    header, payload, signature = real.split(".")
    how = draw(
        st.sampled_from(
            ["flip", "cut", "drop", "swap", "payload", "header", "x5c", "signature", "nested"]
        )
    )
    if how == "flip":
        at = draw(st.integers(0, len(real) - 1))
        char = draw(st.sampled_from("Aa0-_.=+/ \x00é"))
        return real[:at] + char + real[at + 1 :]
    if how == "cut":
        return real[: draw(st.integers(0, len(real) - 1))]
    if how == "drop":
        parts = [header, payload, signature]
        del parts[draw(st.integers(0, 2))]
        return ".".join(parts)
    if how == "swap":
        return ".".join(draw(st.permutations([header, payload, signature])))
    if how == "payload":  # another payload under the real signature
        return ".".join([header, _b64url(_json_bytes(draw(json_values))), signature])
    if how == "signature":
        return ".".join([header, payload, _b64url(draw(st.binary(max_size=80)))])
    decoded = json.loads(_unb64url(header))
    if how == "header":
        decoded[draw(st.sampled_from(["alg", "x5c", "typ", "kid"]))] = draw(json_values)
    elif how == "x5c":
        chain = list(decoded["x5c"])
        at = draw(st.integers(0, len(chain) - 1))
        choice = draw(st.sampled_from(["garbage", "drop", "reverse", "base64 junk"]))
        if choice == "garbage":
            chain[at] = draw(st.text(max_size=20))
        elif choice == "drop":
            del chain[at]
        elif choice == "reverse":
            chain.reverse()
        else:
            chain[at] = b64(draw(st.binary(max_size=60)))
        decoded["x5c"] = chain
    else:  # nested: the notification's signed items replaced by junk, outer header kept
        body = json.loads(_unb64url(payload))
        data = body.get("data", {})
        data[draw(st.sampled_from(["signedTransactionInfo", "signedRenewalInfo"]))] = draw(jws_like)
        body["data"] = data
        return ".".join([header, _b64url(_json_bytes(body)), signature])
    return ".".join([_b64url(_json_bytes(decoded)), payload, signature])


@FUZZ
@given(data=st.data())
def test_verifier_on_mangled_real_jws(
    verifier: AppleVerifier, real_jws: str, data: st.DataObject
) -> None:
    verifies_or_refuses(verifier, data.draw(mangled(real_jws)))


signed_shapes = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "notificationType": _maybe(st.sampled_from(["SUBSCRIBED", "TEST", "DID_RENEW"])),
            "subtype": json_values,
            "notificationUUID": json_values,
            "signedDate": _maybe(st.integers(0, 2**45)),
            "version": json_values,
            "data": _maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "bundleId": _maybe(st.just(BUNDLE)),
                        "appAppleId": _maybe(st.just(APP_ID)),
                        "environment": _maybe(st.sampled_from(["Sandbox", "Production"])),
                        "status": json_values,
                        "signedTransactionInfo": _maybe(jws_like),
                        "signedRenewalInfo": _maybe(jws_like),
                    },
                )
            ),
            "summary": json_values,
        },
    ),
)


@FUZZ
@given(payload=signed_shapes)
def test_verifier_on_any_json_signed_by_the_trusted_ca(
    verifier: AppleVerifier, ca: TestCA, payload: Any
) -> None:
    """Signed correctly, shaped anyhow: the library's structuring must end in our errors."""
    if not isinstance(payload, dict):
        payload = {"value": payload}
    verifies_or_refuses(verifier, ca.sign(payload))
