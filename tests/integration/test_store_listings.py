"""What `receiptd reconcile` asks the stores for, over real HTTP against the fakes: Apple's
Get Notification History per environment (two hosts, 180 and 30 days, paginationToken) and
Play's voided purchases list (30 days, tokenPagination), through the store adapters."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from receipts.apple.adapter import AppleStore
from receipts.apple.server_api import AppStoreServerClient
from receipts.apple.terms import NonRenewingTerms
from receipts.apple.verifier import AppleVerifier
from receipts.errors import StoreRequestRejected
from receipts.google.acknowledgements import PlayAcknowledgements
from receipts.google.adapter import GooglePlayStore
from receipts.google.play import PlayClient
from receipts.google.push_auth import PushTokenVerifier
from simulators.apple_ca import TestCA, notification_payload
from simulators.fake_play import FakePlay
from simulators.play_purchases import voided_purchase as voided_item
from tests.fakes.fake_appstore import FakeAppStore

BUNDLE = "com.example.app"
ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
PACKAGE = "com.example.app"

_CA = TestCA.generate()
_API_KEY = ec.generate_private_key(ec.SECP256R1())
_API_PEM = _API_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def note(env: str, n: int) -> str:
    return _CA.sign(
        notification_payload(
            notification_type="TEST",
            subtype=None,
            bundle_id=BUNDLE,
            environment=env,
            signed_date=NOW - timedelta(hours=100 - n),
            app_apple_id=1234567890,
            notification_uuid=f"uuid-{env}-{n}",
        )
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def apple(session) -> AsyncIterator[tuple[AppleStore, FakeAppStore, FakeAppStore]]:
    fakes = [
        FakeAppStore(
            _API_KEY.public_key(), KEY_ID, ISSUER, BUNDLE, environment=env, clock=lambda: NOW
        )
        for env in ("Production", "Sandbox")
    ]
    for fake in fakes:
        await fake.start()
    verifier = AppleVerifier(BUNDLE, 1234567890, ["Production", "Sandbox"], [_CA.root_der], False)
    client = AppStoreServerClient(
        session,
        verifier,
        issuer_id=ISSUER,
        key_id=KEY_ID,
        private_key=_API_PEM,
        bundle_id=BUNDLE,
        production_url=fakes[0].url,
        sandbox_url=fakes[1].url,
        retries=0,
    )
    yield AppleStore(verifier, client, NonRenewingTerms({})), fakes[0], fakes[1]
    for fake in fakes:
        await fake.stop()


async def test_apple_history_per_environment_paged_and_limited(apple) -> None:
    store, production, sandbox = apple
    for n in range(25):
        production.add_notification(note("Production", n))
    sent = note("Sandbox", 0)
    sandbox.add_notification(sent)

    listings = store.listings(None, NOW, NOW)

    assert [(each.name, NOW - each.since, each.clamped) for each in listings] == [
        ("Production", timedelta(days=180) - timedelta(minutes=10), False),
        ("Sandbox", timedelta(days=30) - timedelta(minutes=10), False),
    ]
    first = await store.list_page(listings[0], None)
    assert (len(first.items), first.cursor is not None) == (20, True)
    second = await store.list_page(listings[0], first.cursor)
    assert (len(second.items), second.cursor) == (5, None)
    [only] = (await store.list_page(listings[1], None)).items
    assert only.label == "notification uuid-Sandbox-0"
    assert json.loads(only.body) == {"signedPayload": sent}  # as Apple POSTs it
    [request] = [r for r in production.requests if "paginationToken" in r.query]
    assert request.method == "POST"

    # A window asked further back than Apple keeps is cut to what it keeps (and says so).
    clamped = store.listings(NOW - timedelta(days=365), NOW, NOW)
    assert [(c.since, c.clamped) for c in clamped] == [(each.since, True) for each in listings]
    # What Apple refuses is StoreRequestRejected: a token of another request, a window too old.
    with pytest.raises(StoreRequestRejected):
        await store.list_page(listings[1], first.cursor)
    too_old = dataclasses.replace(listings[1], since=NOW - timedelta(days=31))
    with pytest.raises(StoreRequestRejected):
        await store.list_page(too_old, None)


async def test_apple_environments_on_one_host_are_asked_once(apple, session) -> None:
    store, production, _sandbox = apple
    assert store.api is not None
    one_host = dataclasses.replace(
        store,
        api=AppStoreServerClient(
            session,
            store.verifier,
            issuer_id=ISSUER,
            key_id=KEY_ID,
            private_key=_API_PEM,
            bundle_id=BUNDLE,
            production_url=production.url,
            sandbox_url=production.url,
        ),
    )
    assert [each.name for each in one_host.listings(None, NOW, NOW)] == ["Production"]


async def test_play_voided_purchases_paged_and_limited(session) -> None:
    fake = FakePlay(require_auth=False, clock=lambda: NOW)
    await fake.start()
    try:
        play = PlayClient(session, None, root_url=fake.base_url, allow_anonymous=True, attempts=1)
        store = GooglePlayStore(
            verifier=PushTokenVerifier("aud", "email", None, session),
            play=play,
            acks=PlayAcknowledgements(None, play, lambda: NOW),  # type: ignore[arg-type]
            package_names=frozenset({PACKAGE}),
            consumable_products=frozenset(),
            known_products=frozenset(),
            voided_page_size=2,
        )
        for n in range(3):
            fake.add_voided(PACKAGE, voided_item(f"tok-{n}", f"GPA.{n}", NOW - timedelta(days=n)))
        fake.add_voided(PACKAGE, voided_item("p-1", "GPA.9", NOW), subscription=False)
        fake.add_voided(PACKAGE, voided_item("old", "GPA.8", NOW - timedelta(days=40)))

        [listing] = store.listings(NOW - timedelta(days=90), NOW, NOW)

        assert (NOW - listing.since, listing.clamped) == (timedelta(days=30, minutes=-10), True)
        first = await store.list_page(listing, None)
        second = await store.list_page(listing, first.cursor)
        assert second.cursor is None
        items = first.items + second.items
        assert [i.purchase_id for i in items] == ["tok-2", "tok-1", "tok-0", "p-1"]
        voided = items[0].request
        assert voided is not None
        assert voided["voided_purchase"]["orderId"] == "GPA.2"
        assert (
            items[0].message_id == f"voided:GPA.2:{voided['voided_purchase']['voidedTimeMillis']}"
        )
        assert items[0].stated_at == NOW - timedelta(days=2)
        with pytest.raises(StoreRequestRejected):
            await store.list_page(
                dataclasses.replace(listing, since=NOW - timedelta(days=31)), None
            )
        play.close()
    finally:
        await fake.stop()
