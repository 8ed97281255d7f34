"""Wire fidelity: the official google-api-python-client talks to the fake unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from receipts.google.play import SCOPE
from simulators.fake_play import FakePlay, product_purchase, subscription_purchase
from simulators.google_signer import GoogleTestKeys
from simulators.play_purchases import voided_purchase
from tests.conftest import Clock

PKG = "com.example.app"


@pytest.fixture(scope="session")
def keys() -> GoogleTestKeys:
    return GoogleTestKeys.generate()


@pytest.fixture
async def fake(keys: GoogleTestKeys) -> AsyncIterator[FakePlay]:
    play = FakePlay(keys=keys)
    await play.start()
    yield play
    await play.stop()


@pytest.fixture
def service(fake: FakePlay, keys: GoogleTestKeys) -> Iterator[Any]:
    creds = service_account.Credentials.from_service_account_info(
        keys.service_account_info(fake.token_uri), scopes=[SCOPE]
    )
    # The same as build(..., credentials=creds), with an Http we can close afterwards.
    http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http())
    yield build(
        "androidpublisher",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": fake.base_url},
    )
    http.http.close()


async def test_official_client_reads_and_acknowledges(
    fake: FakePlay, service: Any, clock: Clock
) -> None:
    body = subscription_purchase("grace", now=clock.now, acknowledged=False, linked_token="older")
    fake.set_subscription(PKG, "tok/1", body)
    fake.set_product(PKG, "lifetime_unlock", "p1", product_purchase(purchase_time=clock.now))
    purchases = service.purchases()

    def calls() -> tuple[Any, Any]:
        sub = purchases.subscriptionsv2().get(packageName=PKG, token="tok/1").execute()
        purchases.subscriptions().acknowledge(
            packageName=PKG, subscriptionId="premium_monthly", token="tok/1", body={}
        ).execute()
        product = (
            purchases.products()
            .get(packageName=PKG, productId="lifetime_unlock", token="p1")
            .execute()
        )
        purchases.products().acknowledge(
            packageName=PKG, productId="lifetime_unlock", token="p1", body={}
        ).execute()
        return sub, product

    sub, product = await asyncio.to_thread(calls)  # the official client is synchronous
    assert sub == body
    assert product["productId"] == "lifetime_unlock"
    assert [(a["kind"], a["token"]) for a in fake.acknowledgements] == [
        ("subscription", "tok/1"),
        ("product", "p1"),
    ]
    assert fake.token_requests == 1
    assert all(r.authorized for r in fake.api_requests())
    paths = {r.path for r in fake.api_requests()}
    assert (
        f"/androidpublisher/v3/applications/{PKG}/purchases/subscriptionsv2/tokens/tok/1" in paths
    )


async def test_official_client_parses_google_error_bodies(fake: FakePlay, service: Any) -> None:
    fake.gone.add("old")
    purchases = service.purchases()

    def get(token: str) -> None:
        purchases.subscriptionsv2().get(packageName=PKG, token=token).execute()

    with pytest.raises(HttpError) as missing:
        await asyncio.to_thread(get, "unknown")
    assert missing.value.status_code == 404
    assert missing.value.error_details[0]["reason"] == "notFound"
    with pytest.raises(HttpError) as gone:
        await asyncio.to_thread(get, "old")
    assert gone.value.status_code == 410


async def test_official_client_retries_on_503(fake: FakePlay, service: Any, clock: Clock) -> None:
    fake.set_subscription(PKG, "t", subscription_purchase("active", now=clock.now))
    fake.fail(503, times=1)
    purchases = service.purchases()

    def get() -> Any:
        request = purchases.subscriptionsv2().get(packageName=PKG, token="t")
        request._rand = lambda: 0.0  # its backoff is rand() * 2**n seconds: skip the wait
        return request.execute(num_retries=2)

    assert (await asyncio.to_thread(get))["subscriptionState"] == "SUBSCRIPTION_STATE_ACTIVE"


async def test_official_client_lists_voided_purchases_page_by_page(
    fake: FakePlay, service: Any, clock: Clock
) -> None:
    fake.clock = clock
    for n in range(3):
        fake.add_voided(
            PKG, voided_purchase(f"tok-{n}", f"GPA.{n}", clock.now - timedelta(hours=n))
        )

    def every_page() -> list[list[str]]:
        pages, token = [], None
        while True:
            extra = {"token": token} if token else {}
            page = (
                service.purchases()
                .voidedpurchases()
                .list(packageName=PKG, type=1, maxResults=2, **extra)
                .execute()
            )
            pages.append([v["orderId"] for v in page["voidedPurchases"]])
            token = page.get("tokenPagination", {}).get("nextPageToken")
            if token is None:
                return pages

    assert await asyncio.to_thread(every_page) == [["GPA.2", "GPA.1"], ["GPA.0"]]
