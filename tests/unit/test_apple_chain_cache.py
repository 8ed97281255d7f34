"""Differential test: the chain-cached verifier decides exactly like the plain library one."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException
from cryptography.hazmat.primitives.asymmetric import ec

from receipts.apple.chain_cache import CachingChainVerifier
from simulators.apple_ca import (
    TestCA,
    ms,
    notification_payload,
    renewal_payload,
    transaction_payload,
)

BUNDLE = "com.example.app"
APP_ID = 1234
UTC = dt.UTC
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# A CA whose leaf is valid only in 2024: the same chain is valid at some dates, not others.
LEAF_FROM = dt.datetime(2024, 1, 1, tzinfo=UTC)
LEAF_TO = dt.datetime(2025, 1, 1, tzinfo=UTC)


def _tx(env: str, when: dt.datetime, **extra: Any) -> dict[str, Any]:
    return transaction_payload(
        bundle_id=extra.pop("bundle_id", BUNDLE),
        environment=env,
        transaction_id="2000000001",
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        purchase_date=when - dt.timedelta(days=1),
        signed_date=when,
        expires_date=when + dt.timedelta(days=29),
        **extra,
    )


def _ren(env: str, when: dt.datetime) -> dict[str, Any]:
    return renewal_payload(
        environment=env,
        original_transaction_id="2000000000",
        product_id="premium.monthly",
        signed_date=when,
    )


def _tamper(jws: str) -> str:
    header, payload, sig = jws.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["productId"] = "premium.yearly"
    body.setdefault("data", {})
    new = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{new}.{sig}"


Case = tuple[str, str, str]  # (name, method, jws)


def _corpus(ca: TestCA, short: TestCA, other: TestCA) -> list[Case]:
    forger = ec.generate_private_key(ec.SECP256R1())
    cases: list[Case] = []
    for env in ("Sandbox", "Production"):
        tx = ca.sign(_tx(env, NOW))
        ren = ca.sign(_ren(env, NOW))
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
        cases += [
            (f"valid tx {env}", "tx", tx),
            (f"valid renewal {env}", "renewal", ren),
            (f"valid notification {env}", "notification", ca.sign(note)),
            (f"forged tx {env}", "tx", ca.sign(_tx(env, NOW), key=forger)),
            (f"forged notification {env}", "notification", ca.sign(note, key=forger)),
            (f"tampered tx {env}", "tx", _tamper(tx)),
            (f"wrong root {env}", "tx", other.sign(_tx(env, NOW))),
            (f"wrong bundle {env}", "tx", ca.sign(_tx(env, NOW, bundle_id="com.evil"))),
            (
                f"wrong app id {env}",
                "notification",
                ca.sign({**note, "data": {**note["data"], "appAppleId": 9}}),
            ),
            (
                f"no date {env}",
                "tx",
                ca.sign({k: v for k, v in _tx(env, NOW).items() if k != "signedDate"}),
            ),
        ]
        # One chain, several dates: inside, at and just outside the leaf's window.
        for label, when in (
            ("inside", dt.datetime(2024, 6, 1, tzinfo=UTC)),
            ("at notBefore", LEAF_FROM),
            ("before notBefore", LEAF_FROM - dt.timedelta(seconds=1)),
            ("last second", LEAF_TO - dt.timedelta(seconds=1)),
            ("at notAfter", LEAF_TO),
            ("last ms", LEAF_TO - dt.timedelta(milliseconds=1)),
            ("second after notAfter", LEAF_TO + dt.timedelta(seconds=1)),
            ("ms after notAfter", LEAF_TO + dt.timedelta(milliseconds=1)),
            ("after", LEAF_TO + dt.timedelta(days=30)),
            ("long before", dt.datetime(2001, 1, 1, tzinfo=UTC)),
        ):
            cases.append((f"short chain {label} {env}", "tx", short.sign(_tx(env, when))))
    sandbox_tx = ca.sign(_tx("Sandbox", NOW))
    cases += [
        ("x5c of two", "tx", ca.sign(_tx("Sandbox", NOW), x5c=ca.x5c[:2])),
        (
            "x5c garbage",
            "tx",
            ca.sign(_tx("Sandbox", NOW), x5c=["bm90IGEgY2VydA==", "eA==", "eA=="]),
        ),
        ("x5c of another CA", "tx", ca.sign(_tx("Sandbox", NOW), x5c=other.x5c)),
        ("far future date", "tx", ca.sign({**_tx("Sandbox", NOW), "signedDate": 10**17})),
        ("negative date", "tx", ca.sign({**_tx("Sandbox", NOW), "signedDate": -5000})),
        ("not a jws", "tx", "garbage"),
        ("truncated", "tx", sandbox_tx[: len(sandbox_tx) // 2]),
    ]
    return cases


class Counting:
    """A chain verifier seen through a call counter: counts `verify_chain` calls, lends
    every other attribute (the library reads enable_strict_checks and friends)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def verify_chain(self, *args: Any) -> Any:
        self.calls += 1
        return self.inner.verify_chain(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cached(inner: Any, roots: list[bytes], **kw: Any) -> tuple[Counting, Counting]:
    """(all calls into the cache, calls the cache let through to the library)."""
    library = Counting(inner)
    return Counting(CachingChainVerifier(library, roots, **kw)), library


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except VerificationException as exc:
        return ("error", exc.status)


def _call(verifier: SignedDataVerifier, method: str, jws: str) -> tuple[str, Any]:
    fn = {
        "tx": verifier.verify_and_decode_signed_transaction,
        "renewal": verifier.verify_and_decode_renewal_info,
        "notification": verifier.verify_and_decode_notification,
    }[method]
    return _outcome(lambda: fn(jws))


@pytest.fixture(scope="module")
def cas() -> tuple[TestCA, TestCA, TestCA]:
    ca = TestCA.generate()
    # Same root and intermediate keys as `ca` would be ideal; a separate CA with a short
    # leaf window is enough: its root is trusted too.
    short = TestCA.generate(leaf_not_before=LEAF_FROM, leaf_not_after=LEAF_TO, name="short")
    other = TestCA.generate(name="untrusted")
    return ca, short, other


@pytest.mark.parametrize("env", [Environment.SANDBOX, Environment.PRODUCTION])
def test_cached_and_uncached_verifiers_agree(
    cas: tuple[TestCA, TestCA, TestCA], env: Environment
) -> None:
    ca, short, other = cas
    roots = [ca.root_der, short.root_der]
    plain = SignedDataVerifier(roots, False, env, BUNDLE, APP_ID)
    cached = SignedDataVerifier(roots, False, env, BUNDLE, APP_ID)
    cache, library = _cached(cached._chain_verifier, roots, maxsize=8)
    cached._chain_verifier = cache
    corpus = _corpus(ca, short, other)

    expected = {name: _call(plain, method, jws) for name, method, jws in corpus}
    rng = random.Random(7)
    for _round in range(3):  # warm cache, then shuffled orders: hits must not change answers
        rng.shuffle(corpus)
        for name, method, jws in corpus:
            assert _call(cached, method, jws) == expected[name], name
    assert cache.calls - library.calls > 50  # served from the cache
    # The corpus really contains both outcomes, including inside/outside the same window.
    verdicts = {name: result[0] for name, result in expected.items()}
    assert verdicts[f"short chain inside {env.value}"] == "ok"
    assert verdicts[f"short chain last second {env.value}"] == "ok"
    assert verdicts[f"short chain last ms {env.value}"] == "ok"
    assert verdicts[f"short chain at notBefore {env.value}"] == "ok"
    assert verdicts[f"short chain at notAfter {env.value}"] == "ok"  # OpenSSL: inclusive
    assert verdicts[f"short chain ms after notAfter {env.value}"] == "ok"  # whole seconds
    assert verdicts[f"short chain second after notAfter {env.value}"] == "error"
    assert verdicts[f"short chain after {env.value}"] == "error"
    assert verdicts[f"short chain before notBefore {env.value}"] == "error"
    assert verdicts[f"forged tx {env.value}"] == "error"
    assert verdicts[f"valid notification {env.value}"] == "ok"


def test_chain_seen_valid_then_used_outside_its_window(cas: tuple[TestCA, TestCA, TestCA]) -> None:
    _ca, short, _other = cas
    roots = [short.root_der]
    cached = SignedDataVerifier(roots, False, Environment.SANDBOX, BUNDLE)
    cache, library = _cached(cached._chain_verifier, roots)
    cached._chain_verifier = cache
    inside = short.sign(_tx("Sandbox", dt.datetime(2024, 6, 1, tzinfo=UTC)))
    outside = short.sign(_tx("Sandbox", LEAF_TO + dt.timedelta(hours=1)))
    assert cached.verify_and_decode_signed_transaction(inside).bundleId == BUNDLE
    assert cached.verify_and_decode_signed_transaction(inside).bundleId == BUNDLE
    assert (cache.calls, library.calls) == (2, 1)  # one hit, one miss
    with pytest.raises(VerificationException) as err:
        cached.verify_and_decode_signed_transaction(outside)
    assert err.value.status.name == "VERIFICATION_FAILURE"
    assert (cache.calls, library.calls) == (3, 2)  # outside the window: not served


def test_cache_is_bounded_lru(cas: tuple[TestCA, TestCA, TestCA]) -> None:
    ca, short, _other = cas
    roots = [ca.root_der, short.root_der]
    verifier = SignedDataVerifier(roots, False, Environment.SANDBOX, BUNDLE)
    library = Counting(verifier._chain_verifier)
    cache = CachingChainVerifier(library, roots, maxsize=1)
    when = int(dt.datetime(2024, 6, 1, tzinfo=UTC).timestamp())
    cache.verify_chain(ca.x5c, False, when)
    cache.verify_chain(short.x5c, False, when)
    cache.verify_chain(ca.x5c, False, when)
    assert len(cache) == 1
    assert library.calls == 3  # the first chain was evicted: no hit


def test_online_checks_bypass_the_offline_cache() -> None:
    calls: list[bool] = []

    class Inner:
        def verify_chain(self, certificates: list[str], online: bool, effective_date: int) -> str:
            calls.append(online)
            return "KEY"

    ca = TestCA.generate()
    cache = CachingChainVerifier(Inner(), [ca.root_der])
    assert cache.verify_chain(ca.x5c, True, ms(NOW) // 1000) == "KEY"
    assert cache.verify_chain(ca.x5c, True, ms(NOW) // 1000) == "KEY"
    assert calls == [True, True]
    assert len(cache) == 0
