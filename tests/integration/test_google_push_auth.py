"""Pub/Sub push OIDC verification over real HTTP against the fake certs endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from receipts.errors import PushAuthenticationFailed, StoreUnavailable
from receipts.google.push_auth import PushTokenVerifier, _max_age
from simulators.fake_play import FakePlay
from simulators.google_signer import GoogleTestKeys, RsaKey

AUD = "https://receiptd.example.com/webhooks/google"
EMAIL = "rtdn-push@example.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def keys() -> GoogleTestKeys:
    return GoogleTestKeys.generate()


@pytest.fixture(scope="session")
def stranger() -> RsaKey:
    return RsaKey.generate("stranger")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake(keys: GoogleTestKeys) -> AsyncIterator[FakePlay]:
    play = FakePlay(keys=keys, certs_max_age=120)
    await play.start()
    yield play
    await play.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(
    fake: FakePlay, session: aiohttp.ClientSession, clock: Clock | None = None
) -> PushTokenVerifier:
    return PushTokenVerifier(AUD, EMAIL, fake.certs_url, session, clock=clock or Clock())


async def test_valid_token_is_accepted(
    keys: GoogleTestKeys, fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    verifier = _verifier(fake, session)
    claims = await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL))
    assert claims["email"] == EMAIL
    assert claims["aud"] == AUD
    # The other spelling of Google's issuer is accepted too.
    token = keys.sign_push_token(AUD, EMAIL, issuer="accounts.google.com")
    assert (await verifier.verify(f"bearer {token}"))["iss"] == "accounts.google.com"


@pytest.mark.parametrize(
    "case",
    [
        "no header",
        "empty",
        "basic scheme",
        "bearer without token",
        "garbage",
        "three garbage segments",
        "wrong audience",
        "wrong signer",
        "wrong signer claiming our kid",
        "wrong email",
        "email not verified",
        "expired",
        "issued in the future",
        "wrong issuer",
        "no kid",
        "unknown kid",
        "alg none",
        "huge",
    ],
)
async def test_rejections(
    case: str,
    keys: GoogleTestKeys,
    stranger: RsaKey,
    fake: FakePlay,
    session: aiohttp.ClientSession,
) -> None:
    good = keys.sign_push_token
    headers: dict[str, str | None] = {
        "no header": None,
        "empty": "",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "bearer without token": "Bearer ",
        "garbage": "Bearer not-a-jwt",
        "three garbage segments": "Bearer a.b.c",
        "wrong audience": "Bearer " + good("https://other.example.com/", EMAIL),
        "wrong signer": "Bearer " + good(AUD, EMAIL, key=stranger),
        "wrong signer claiming our kid": "Bearer "
        + good(AUD, EMAIL, key=stranger, kid=keys.oidc.kid),
        "wrong email": "Bearer " + good(AUD, "attacker@example.com"),
        "email not verified": "Bearer " + good(AUD, EMAIL, email_verified=False),
        "expired": "Bearer " + good(AUD, EMAIL, expires_in=-120),
        "issued in the future": "Bearer " + good(AUD, EMAIL, extra={"iat": 2**31}),
        "wrong issuer": "Bearer " + good(AUD, EMAIL, issuer="https://evil.example.com"),
        "no kid": "Bearer " + _without_kid(good(AUD, EMAIL)),
        "unknown kid": "Bearer " + good(AUD, EMAIL, kid="not-a-google-kid"),
        "alg none": "Bearer eyJhbGciOiJub25lIiwia2lkIjoiayJ9.eyJhdWQiOiJ4In0.",
        "huge": "Bearer " + "a" * 10_000,
    }
    verifier = _verifier(fake, session)
    with pytest.raises(PushAuthenticationFailed) as info:
        await verifier.verify(headers[case])
    token = (headers[case] or "").removeprefix("Bearer ")
    if len(token) > 10:
        assert token not in str(info.value)


def _without_kid(token: str) -> str:
    header, rest = token.split(".", 1)
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    decoded.pop("kid")
    new = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{new}.{rest}"


async def test_certs_cached_for_max_age(
    keys: GoogleTestKeys, fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = _verifier(fake, session, clock)
    token = "Bearer " + keys.sign_push_token(AUD, EMAIL)
    for _ in range(5):
        await verifier.verify(token)
    assert fake.certs_requests == 1
    clock.now += 119  # fake serves max-age=120
    await verifier.verify(token)
    assert fake.certs_requests == 1
    clock.now += 2
    await verifier.verify(token)
    assert fake.certs_requests == 2


async def test_concurrent_first_requests_fetch_once(
    keys: GoogleTestKeys, fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    fake.delay = 0.0
    verifier = _verifier(fake, session)
    token = "Bearer " + keys.sign_push_token(AUD, EMAIL)
    await asyncio.gather(*(verifier.verify(token) for _ in range(10)))
    assert fake.certs_requests == 1


async def test_unknown_kid_refetches_once_then_rate_limited(
    keys: GoogleTestKeys, stranger: RsaKey, fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = _verifier(fake, session, clock)
    await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL))
    assert fake.certs_requests == 1
    # Google rotates: a new key appears at the endpoint before our cache expires.
    fake.certs = keys.certs_json() | {stranger.kid: stranger.cert_pem.decode()}
    clock.now += 31
    rotated = "Bearer " + keys.sign_push_token(AUD, EMAIL, key=stranger)
    assert (await verifier.verify(rotated))["email"] == EMAIL
    assert fake.certs_requests == 2
    # Garbage kids cannot make us hammer the endpoint.
    for i in range(20):
        with pytest.raises(PushAuthenticationFailed):
            await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL, kid=f"junk-{i}"))
    assert fake.certs_requests == 2
    clock.now += 31
    with pytest.raises(PushAuthenticationFailed):
        await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL, kid="junk-late"))
    assert fake.certs_requests == 3


async def test_unreachable_certs_is_store_unavailable(
    keys: GoogleTestKeys, session: aiohttp.ClientSession
) -> None:
    fake = FakePlay(keys=keys)
    await fake.start()
    url = fake.certs_url
    await fake.stop()
    verifier = PushTokenVerifier(AUD, EMAIL, url, session)
    with pytest.raises(StoreUnavailable):
        await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL))


async def test_stale_certs_ride_out_an_outage(
    keys: GoogleTestKeys, fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = _verifier(fake, session, clock)
    token = "Bearer " + keys.sign_push_token(AUD, EMAIL)
    await verifier.verify(token)
    fake.fail(503, times=1, path_contains="")
    fake.certs = {"broken": "x"}
    await fake.stop()
    clock.now += 500
    assert (await verifier.verify(token))["email"] == EMAIL


async def test_file_url(
    keys: GoogleTestKeys, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    keys.save(tmp_path)
    url = (tmp_path / "google_certs.json").as_uri()
    verifier = PushTokenVerifier(AUD, EMAIL, url, session)
    assert (await verifier.verify("Bearer " + keys.sign_push_token(AUD, EMAIL)))["aud"] == AUD
    missing = PushTokenVerifier(AUD, EMAIL, (tmp_path / "nope.json").as_uri(), session)
    with pytest.raises(StoreUnavailable):
        await missing.verify("Bearer " + keys.sign_push_token(AUD, EMAIL))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300.0),
        ("public, max-age=19204, must-revalidate, no-transform", 19204.0),
        ("no-cache", 0.0),
        ("private", 300.0),
    ],
)
def test_max_age_parsing(header: str | None, seconds: float) -> None:
    assert _max_age(header) == seconds
