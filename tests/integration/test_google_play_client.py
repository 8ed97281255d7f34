"""The Play Developer API client over real HTTP against the fake: auth, retries, errors, acks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from entitlements.model import Status
from receipts.errors import PurchaseNotFound, StoreUnavailable
from receipts.google.play import AccessTokens, PlayAccessDenied, PlayClient
from receipts.google.translate import is_gone, needs_acknowledgement, subscription_events
from simulators.fake_play import FakePlay, product_purchase, subscription_purchase
from simulators.google_signer import GoogleTestKeys
from tests.conftest import Clock

PKG = "com.example.app"
TOKEN = "opaque.token/with+odd=chars:and spaces"  # exercises URL quoting


@pytest.fixture(scope="session")
def keys() -> GoogleTestKeys:
    return GoogleTestKeys.generate()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake(keys: GoogleTestKeys) -> AsyncIterator[FakePlay]:
    play = FakePlay(keys=keys, stall_seconds=2.0)
    await play.start()
    yield play
    await play.stop()


_clients: list[PlayClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def _client(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, **kw: object
) -> PlayClient:
    tokens = AccessTokens.from_service_account_info(keys.service_account_info(fake.token_uri))
    options: dict[str, object] = {"root_url": fake.base_url, "backoff": 0.01, "timeout": 2.0} | kw
    client = PlayClient(session, tokens, **options)
    _clients.append(client)
    return client


async def test_get_subscription_with_service_account_token(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    body = subscription_purchase("active", now=clock.now, user="u-1", acknowledged=False)
    fake.set_subscription(PKG, TOKEN, body)
    client = _client(fake, keys, session)
    got = await client.get_subscription(PKG, TOKEN)
    assert got == body
    again = await client.get_subscription(PKG, TOKEN)
    assert again == body
    assert fake.token_requests == 1  # the access token is cached
    paths = [r.path for r in fake.api_requests()]
    assert paths[0] == (
        f"/androidpublisher/v3/applications/{PKG}/purchases/subscriptionsv2/tokens/{TOKEN}"
    )
    assert all(r.authorized for r in fake.api_requests())
    [event] = subscription_events(4, TOKEN, got, PKG, clock.now)
    assert event.status is Status.ACTIVE
    assert needs_acknowledgement(got)


async def test_concurrent_calls_share_one_token_refresh(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    client = _client(fake, keys, session)
    await asyncio.gather(*(client.get_subscription(PKG, "t") for _ in range(20)))
    assert fake.token_requests == 1


async def test_acknowledge_subscription_and_product_are_recorded(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(
        PKG, TOKEN, subscription_purchase("active", now=clock.now, acknowledged=False)
    )
    fake.set_product(PKG, "lifetime_unlock", "p-tok", product_purchase(purchase_time=clock.now))
    client = _client(fake, keys, session)
    await client.acknowledge_subscription(PKG, "premium_monthly", TOKEN)
    await client.acknowledge_product(PKG, "lifetime_unlock", "p-tok")
    assert [(a["kind"], a["product_id"], a["token"]) for a in fake.acknowledgements] == [
        ("subscription", "premium_monthly", TOKEN),
        ("product", "lifetime_unlock", "p-tok"),
    ]
    assert not needs_acknowledgement(await client.get_subscription(PKG, TOKEN))
    product = await client.get_product(PKG, "lifetime_unlock", "p-tok")
    assert product["acknowledgementState"] == 1
    assert product["purchaseToken"] == "p-tok"


async def test_acknowledging_unknown_subscription_is_not_found(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    client = _client(fake, keys, session)
    with pytest.raises(PurchaseNotFound):
        await client.acknowledge_subscription(PKG, "other_product", "t")
    assert fake.acknowledgements == []


async def test_retries_then_succeeds(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    fake.fail(503, times=2)
    fake.fail(429, times=1)
    client = _client(fake, keys, session, attempts=4)
    assert (await client.get_subscription(PKG, "t"))["subscriptionState"].endswith("ACTIVE")
    assert len(list(fake.api_requests())) == 4


@pytest.mark.parametrize("status", [503, 500, 429])
async def test_retries_are_bounded_then_store_unavailable(
    status: int, fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    fake.fail(status, times=100)
    client = _client(fake, keys, session, attempts=3)
    with pytest.raises(StoreUnavailable) as info:
        await client.get_subscription(PKG, "t")
    assert info.value.retryable
    assert not isinstance(info.value, PlayAccessDenied)
    assert len(list(fake.api_requests())) == 3


async def test_timeout_is_retried_then_store_unavailable(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    fake.fail(0, times=2)  # stall twice
    client = _client(fake, keys, session, attempts=2, timeout=0.1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await client.get_subscription(PKG, "t")
    assert time.monotonic() - started < 1.5
    fake.fail(0, times=1)
    client3 = _client(fake, keys, session, attempts=2, timeout=0.1)
    assert (await client3.get_subscription(PKG, "t"))["subscriptionState"].endswith("ACTIVE")


async def test_unreachable_api_is_store_unavailable(
    keys: GoogleTestKeys, session: aiohttp.ClientSession
) -> None:
    fake = FakePlay(keys=keys, require_auth=False)
    url = await fake.start()
    await fake.stop()
    client = PlayClient(session, None, root_url=url, allow_anonymous=True, attempts=2, backoff=0.01)
    with pytest.raises(StoreUnavailable):
        await client.get_subscription(PKG, "t")


async def test_gone_subscription_is_expired_marker(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.gone.add("old")
    client = _client(fake, keys, session)
    body = await client.get_subscription(PKG, "old")
    assert is_gone(body)
    [event] = subscription_events(13, "old", body, PKG, clock.now)
    assert event.status is Status.EXPIRED
    with pytest.raises(PurchaseNotFound):  # 410 means "gone" only for subscriptions
        await client.get_product(PKG, "lifetime_unlock", "old")


async def test_unknown_tokens_are_not_found(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession
) -> None:
    client = _client(fake, keys, session)
    with pytest.raises(PurchaseNotFound) as info:
        await client.get_subscription(PKG, "never-issued-token")
    assert "never-issued-token" not in str(info.value)
    fake.fail(400, times=1)
    with pytest.raises(PurchaseNotFound):
        await client.get_product(PKG, "x", "bad token")
    assert len(list(fake.api_requests())) == 2  # not retried


async def test_denied_is_access_denied_not_retried(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession
) -> None:
    fake.deny = True
    client = _client(fake, keys, session)
    with pytest.raises(PlayAccessDenied) as info:
        await client.get_subscription(PKG, "t")
    assert "PERMISSION_DENIED" in str(info.value)
    assert len(list(fake.api_requests())) == 1


async def test_unauthenticated_refreshes_once_then_access_denied(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    fake.fail(401, times=1)
    client = _client(fake, keys, session)
    assert (await client.get_subscription(PKG, "t"))["subscriptionState"].endswith("ACTIVE")
    assert fake.token_requests == 2  # the rejected token was replaced
    fake.fail(401, times=5)
    with pytest.raises(PlayAccessDenied):
        await client.get_subscription(PKG, "t")


async def test_service_account_not_trusted_by_token_endpoint(
    fake: FakePlay, session: aiohttp.ClientSession
) -> None:
    other = GoogleTestKeys.generate()
    tokens = AccessTokens.from_service_account_info(other.service_account_info(fake.token_uri))
    client = PlayClient(session, tokens, root_url=fake.base_url)
    _clients.append(client)
    with pytest.raises(PlayAccessDenied):
        await client.get_subscription(PKG, "t")
    assert list(fake.api_requests()) == []


async def test_anonymous_must_be_explicit(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError):
        PlayClient(session, None)


async def test_latency_is_not_serialised(
    fake: FakePlay, keys: GoogleTestKeys, session: aiohttp.ClientSession, clock: Clock
) -> None:
    """20 reads at 50 ms each complete in about one delay, not twenty: nothing blocks."""
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    client = _client(fake, keys, session)
    await client.get_subscription(PKG, "t")  # token fetched
    fake.delay = 0.05
    started = time.monotonic()
    await asyncio.gather(*(client.get_subscription(PKG, "t") for _ in range(20)))
    assert time.monotonic() - started < 0.5
