"""The Apple verifiers' own PyJWT decoder: its segment check decides exactly like PyJWT's
(hypothesis), `FastSignedDataVerifier._decode_signed_object` returns and raises exactly what
the library's does (differential), and it is used only on the checked releases."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt import api_jws
from jwt.exceptions import DecodeError
from structlog.testing import capture_logs

from receipts.apple import fast_jws
from receipts.apple.fast_jws import FastPyJWS, FastSignedDataVerifier, verifier_class
from receipts.apple.verifier import AppleVerifier, peek_payload
from receipts.errors import MalformedPayload
from simulators.apple_ca import (
    TestCA,
    ms,
    notification_payload,
    renewal_payload,
    transaction_payload,
)

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
BUNDLE = "com.example.app"
APP_ID = 1234567890
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ENVIRONMENTS = [Environment.SANDBOX, Environment.PRODUCTION, Environment.XCODE]
ENVIRONMENTS += [Environment.LOCAL_TESTING]

# PyJWT's own check, as shipped (nothing in the process replaces it any more).
ORIGINAL = api_jws.PyJWS._decode_base64url_segment
FAST = FastPyJWS._decode_base64url_segment


def outcome(fn: Callable[[bytes, str], bytes], segment: bytes) -> tuple[str, Any]:
    try:
        return ("ok", fn(segment, "payload"))
    except DecodeError as exc:
        return ("error", str(exc))


segments = st.one_of(
    st.binary(max_size=40),  # arbitrary junk
    st.binary(max_size=60).map(base64.urlsafe_b64encode),  # padded
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")),
    st.binary(max_size=60).map(base64.b64encode),  # standard alphabet: + /
    st.text(alphabet=ALPHABET.decode() + "=+/!. \n", max_size=50).map(str.encode),
)


def test_the_reference_is_pyjwts_own_check() -> None:
    assert ORIGINAL.__module__ == "jwt.api_jws"
    assert ORIGINAL.__qualname__ == "PyJWS._decode_base64url_segment"
    assert fast_jws.BASE64URL_ALPHABET == api_jws._BASE64URL_ALPHABET == ALPHABET


@settings(max_examples=2000, deadline=None)
@given(segments)
def test_same_decision_as_pyjwt(segment: bytes) -> None:
    assert outcome(FAST, segment) == outcome(ORIGINAL, segment)


@pytest.mark.parametrize(
    "segment", [b"", b"a", b"ab", b"ab==", b"ab=", b"abc=", b"a===", b"!!!!", b"YWJj", b"YW\x00J"]
)
def test_edge_cases(segment: bytes) -> None:
    assert outcome(FAST, segment) == outcome(ORIGINAL, segment)


def load_outcome(jws: api_jws.PyJWS, token: bytes) -> tuple[str, Any]:
    try:
        return ("ok", jws._load(token))
    except DecodeError as exc:
        return ("error", str(exc))


@settings(max_examples=500, deadline=None)
@given(segments, segments, segments)
def test_whole_tokens_split_and_decode_the_same(header: bytes, payload: bytes, sig: bytes) -> None:
    token = b".".join([header, payload, sig])
    assert load_outcome(FastPyJWS(), token) == load_outcome(api_jws.PyJWS(), token)


# --- release gate ------------------------------------------------------------------------


def test_fast_path_is_used_on_the_installed_releases() -> None:
    # Fails when PyJWT or app-store-server-library is upgraded: re-run this module against
    # the new release (and compare its `_decode_signed_object` with ours) before adding it.
    assert verifier_class() is FastSignedDataVerifier
    verifier = AppleVerifier(BUNDLE, APP_ID, ["Production", "Sandbox"], [ca_root()], False)
    assert all(type(v) is FastSignedDataVerifier for v in verifier._verifiers.values())


@pytest.mark.parametrize("setting", ["CHECKED_PYJWT", "CHECKED_LIBRARY"])
def test_other_releases_get_the_library_unchanged(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setattr(fast_jws, setting, frozenset({"0.0.0"}))
    with capture_logs() as logs:
        assert verifier_class() is SignedDataVerifier
        verifier = AppleVerifier(BUNDLE, APP_ID, ["Sandbox"], [ca_root()], False)
    assert type(verifier._verifiers["Sandbox"]) is SignedDataVerifier
    assert [e["event"] for e in logs] == ["apple_jws_fast_path_not_used"] * 2
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["pyjwt"] == jwt.__version__


# --- differential: FastSignedDataVerifier vs the library ----------------------------------

_ROOT: list[bytes] = []


def ca_root() -> bytes:
    if not _ROOT:
        _ROOT.append(TestCA.generate(name="gate").root_der)
    return _ROOT[0]


@pytest.fixture(scope="module")
def cas() -> tuple[TestCA, TestCA, TestCA]:
    ca = TestCA.generate()
    short = TestCA.generate(
        leaf_not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        leaf_not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        name="short",
    )
    other = TestCA.generate(name="untrusted")
    return ca, short, other


def _tx(env: str = "Sandbox", when: dt.datetime = NOW, **extra: Any) -> dict[str, Any]:
    return transaction_payload(
        bundle_id=BUNDLE,
        environment=env,
        transaction_id="2000000001",
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        purchase_date=when,
        signed_date=when,
        expires_date=when + dt.timedelta(days=30),
        **extra,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(jws: str) -> list[str]:
    return jws.split(".")


def _tamper(jws: str) -> str:
    header, payload, sig = _segments(jws)
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["productId"] = "premium.yearly"
    return f"{header}.{_b64(json.dumps(body).encode())}.{sig}"


def _with_header(jws: str, header: dict[str, Any]) -> str:
    _, payload, sig = _segments(jws)
    return f"{_b64(json.dumps(header).encode())}.{payload}.{sig}"


def _pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def corpus(ca: TestCA, short: TestCA, other: TestCA) -> dict[str, Any]:
    forger = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    cases: dict[str, Any] = {}
    for env in ("Sandbox", "Production", "Xcode", "LocalTesting"):
        tx = ca.sign(_tx(env))
        ren = ca.sign(
            renewal_payload(
                environment=env,
                original_transaction_id="2000000000",
                product_id="premium.monthly",
                signed_date=NOW,
            )
        )
        note = notification_payload(
            notification_type="DID_RENEW",
            subtype=None,
            bundle_id=BUNDLE,
            environment=env,
            app_apple_id=APP_ID,
            signed_date=NOW,
            signed_transaction=tx,
            signed_renewal=ren,
            status=1,
        )
        cases |= {
            f"valid tx {env}": tx,
            f"valid renewal {env}": ren,
            f"valid notification {env}": ca.sign(note),
            f"forged {env}": ca.sign(_tx(env), key=forger),
            f"tampered {env}": _tamper(tx),
            f"untrusted root {env}": other.sign(_tx(env)),
        }
    tx = ca.sign(_tx())
    header, payload, sig = _segments(tx)
    plain = _tx()
    cases |= {
        # algorithms other than ES256, each with the right x5c
        "alg none": jwt.encode(plain, None, algorithm="none", headers={"x5c": ca.x5c}),
        "alg HS256": jwt.encode(plain, "k" * 32, algorithm="HS256", headers={"x5c": ca.x5c}),
        "alg ES384": jwt.encode(plain, p384, algorithm="ES384", headers={"x5c": ca.x5c}),
        "alg relabelled ES384": _with_header(tx, {"alg": "ES384", "x5c": ca.x5c}),
        "alg missing": _with_header(tx, {"x5c": ca.x5c}),
        # x5c missing, empty, null, wrong
        "x5c missing": jwt.encode(plain, ca.leaf_key, algorithm="ES256"),
        "x5c empty": ca.sign(plain, x5c=[]),
        "x5c null": _with_header(tx, {"alg": "ES256", "x5c": None}),
        "x5c a string": _with_header(tx, {"alg": "ES256", "x5c": "abc"}),
        "x5c of two": ca.sign(plain, x5c=ca.x5c[:2]),
        "x5c garbage": ca.sign(plain, x5c=["bm90IGEgY2VydA==", "eA==", "eA=="]),
        "x5c of another CA": ca.sign(plain, x5c=other.x5c),
        # the effective date: signedDate, else receiptCreationDate, else now
        "short chain inside": short.sign(_tx(when=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))),
        "short chain after": short.sign(_tx()),
        "short chain no date, receipt date inside": short.sign(
            {
                **{k: v for k, v in plain.items() if k != "signedDate"},
                "receiptCreationDate": ms(dt.datetime(2024, 6, 1, tzinfo=dt.UTC)),
            }
        ),
        "short chain null date, receipt date inside": short.sign(
            {
                **plain,
                "signedDate": None,
                "receiptCreationDate": ms(dt.datetime(2024, 6, 1, tzinfo=dt.UTC)),
            }
        ),
        "short chain no dates (now)": short.sign(
            {k: v for k, v in plain.items() if k != "signedDate"}
        ),
        "date as a digit string": ca.sign({**plain, "signedDate": str(ms(NOW))}),
        "date not a number": ca.sign({**plain, "signedDate": "soon"}),
        "date far future": ca.sign({**plain, "signedDate": 10**17}),
        "date negative": ca.sign({**plain, "signedDate": -5000}),
        "date a float": ca.sign({**plain, "signedDate": ms(NOW) + 0.5}),
        # malformed compact serialisations
        "empty": "",
        "garbage": "garbage",
        "a.b.c": "a.b.c",
        "two segments": f"{header}.{payload}",
        "four segments": f"{tx}.{sig}",
        "truncated": tx[: len(tx) // 2],
        "padded segments": ".".join(_pad(s) for s in _segments(tx)),
        "over-padded": f"{header}===.{payload}.{sig}",
        "standard alphabet": tx.replace("-", "+").replace("_", "/"),
        "junk in payload": f"{header}.{payload[:-4]}!!!!.{sig}",
        "whitespace": f"{header}. {payload}.{sig}",
        "non-ascii": f"{header}.{payload}é.{sig}",
        "payload a JSON list": f"{header}.{_b64(b'[1, 2]')}.{sig}",
        "payload not JSON": f"{header}.{_b64(b'{oops')}.{sig}",
        "header not JSON": f"{_b64(b'nope')}.{payload}.{sig}",
        "header a JSON list": f"{_b64(b'[]')}.{payload}.{sig}",
        "detached payload": _with_header(
            tx, {"alg": "ES256", "x5c": ca.x5c, "b64": False, "crit": ["b64"]}
        ),
        "bytes": tx.encode(),
        "none": None,
    }
    return cases


def decode_outcome(verifier: SignedDataVerifier, jws: Any) -> tuple[Any, ...]:
    try:
        return ("ok", verifier._decode_signed_object(jws))
    except VerificationException as exc:
        cause = exc.__cause__
        return ("error", exc.status, type(cause), str(cause))


def remembered_outcome(verifier: FastSignedDataVerifier, jws: Any) -> tuple[Any, ...]:
    try:
        payload, parsed = peek_payload(jws)
    except MalformedPayload:
        pass
    else:
        verifier.remember_payload(payload, parsed)
    return decode_outcome(verifier, jws)


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.value)
def test_decode_signed_object_matches_the_library(
    cas: tuple[TestCA, TestCA, TestCA], env: Environment
) -> None:
    ca, short, other = cas
    roots = [ca.root_der, short.root_der]
    library = SignedDataVerifier(roots, False, env, BUNDLE, APP_ID)
    fast = FastSignedDataVerifier(roots, False, env, BUNDLE, APP_ID)
    cases = corpus(ca, short, other)
    results = {name: decode_outcome(fast, jws) for name, jws in cases.items()}
    assert results == {name: decode_outcome(library, jws) for name, jws in cases.items()}
    # Again, each case right after itself (its kept load, parse and key are used), and with
    # the route's parse of its payload handed over first, as AppleVerifier does.
    assert {name: decode_outcome(fast, jws) for name, jws in cases.items()} == results
    assert {name: remembered_outcome(fast, jws) for name, jws in cases.items()} == results

    # The corpus holds both outcomes for the reasons it means to (else the test proves little).
    verdicts = {name: result[0] for name, result in results.items()}
    signed = env in {Environment.SANDBOX, Environment.PRODUCTION}
    assert verdicts[f"valid notification {env.value}"] == "ok"
    assert verdicts["short chain inside"] == "ok"
    for name in ("forged", "tampered", "untrusted root"):
        assert verdicts[f"{name} {env.value}"] == ("error" if signed else "ok")
    for name in ("alg none", "alg HS256", "alg ES384", "x5c missing", "x5c empty", "x5c null"):
        assert verdicts[name] == ("error" if signed else "ok"), name
    if signed:
        assert verdicts["short chain after"] == "error"
        assert verdicts["short chain no date, receipt date inside"] == "ok"
        assert verdicts["short chain no dates (now)"] == "error"
        assert results["x5c missing"][2:] == (Exception, "x5c claim was empty")
        assert results["alg HS256"][2:] == (Exception, "Algorithm was not ES256")
    assert verdicts["junk in payload"] == verdicts["none"] == "error"


class RecordingChain:
    """Records what `_decode_signed_object` asks of the chain verifier; answers the leaf key."""

    def __init__(self, ca: TestCA) -> None:
        self.calls: list[tuple[list[str], bool, Any]] = []
        self._key = (
            ca.leaf.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def verify_chain(self, certificates: list[str], online: bool, effective_date: Any) -> str:
        self.calls.append((certificates, online, effective_date))
        return self._key


SECONDS = ms(NOW) // 1000


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.parametrize(
    ("dates", "offline_date"),
    [
        ({"signedDate": ms(NOW)}, SECONDS),
        ({"signedDate": ms(NOW) + 999, "receiptCreationDate": ms(NOW) - 5000}, SECONDS),
        ({"signedDate": None, "receiptCreationDate": ms(NOW) - 5001}, SECONDS - 6),
        ({"receiptCreationDate": ms(NOW) - 5999}, SECONDS - 6),
        ({}, "now"),
    ],
)
def test_effective_date_rule_matches_the_library(
    cas: tuple[TestCA, TestCA, TestCA], online: bool, dates: dict[str, Any], offline_date: Any
) -> None:
    ca = cas[0]
    payload = {k: v for k, v in _tx().items() if k != "signedDate"} | dates
    jws = ca.sign(payload)
    recorded = []
    for cls in (SignedDataVerifier, FastSignedDataVerifier):
        verifier = cls([ca.root_der], online, Environment.SANDBOX, BUNDLE, APP_ID)
        chain = RecordingChain(ca)
        verifier._chain_verifier = chain  # type: ignore[assignment]
        before = time.time()
        assert verifier._decode_signed_object(jws) == payload
        recorded.append((chain.calls, before, time.time()))
    (lib_calls, *_), (fast_calls, before, after) = recorded
    assert len(lib_calls) == len(fast_calls) == 1
    (lib_x5c, lib_online, lib_date), (x5c, fast_online, date) = lib_calls[0], fast_calls[0]
    assert (x5c, fast_online) == (lib_x5c, lib_online) == (ca.x5c, online)
    if online or offline_date == "now":
        assert type(date) is type(lib_date) is float
        assert before <= date <= after
    else:
        assert date == lib_date == offline_date
        assert type(date) is type(lib_date) is int


def test_public_methods_answer_like_the_library(cas: tuple[TestCA, TestCA, TestCA]) -> None:
    ca = cas[0]
    library = SignedDataVerifier([ca.root_der], False, Environment.SANDBOX, BUNDLE, APP_ID)
    fast = FastSignedDataVerifier([ca.root_der], False, Environment.SANDBOX, BUNDLE, APP_ID)
    tx = ca.sign(_tx())
    assert fast.verify_and_decode_signed_transaction(
        tx
    ) == library.verify_and_decode_signed_transaction(tx)
    with pytest.raises(VerificationException) as fast_error:
        fast.verify_and_decode_signed_transaction(ca.sign(_tx("Production")))
    with pytest.raises(VerificationException) as library_error:
        library.verify_and_decode_signed_transaction(ca.sign(_tx("Production")))
    assert fast_error.value.status == library_error.value.status


def test_verifying_leaves_pyjwt_as_shipped(cas: tuple[TestCA, TestCA, TestCA]) -> None:
    ca = cas[0]
    module_functions = (jwt.decode, jwt.get_unverified_header, api_jws._jws_global_obj)
    class_check = vars(api_jws.PyJWS)["_decode_base64url_segment"]
    fast = FastSignedDataVerifier([ca.root_der], False, Environment.SANDBOX, BUNDLE, APP_ID)
    fast.verify_and_decode_signed_transaction(ca.sign(_tx()))
    after = (jwt.decode, jwt.get_unverified_header, api_jws._jws_global_obj)
    assert all(now is before for now, before in zip(after, module_functions, strict=True))
    assert vars(api_jws.PyJWS)["_decode_base64url_segment"] is class_check
    assert type(api_jws._jws_global_obj) is api_jws.PyJWS
    assert api_jws.PyJWS._decode_base64url_segment is ORIGINAL
