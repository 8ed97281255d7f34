"""Several apps in one deployment (issue 20): two App Store apps ([[apple.apps]]) and two Play
packages, over HTTP against real PostgreSQL and Redis, with the App Store Server API faked per
app (like Apple, it answers about the app its token's `bid` names)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from api.keys import SETTINGS
from entitlements.model import Store
from simulators.apple_ca import TestCA, transaction_payload
from simulators.google_signer import subscription_notification
from tests.conftest import READER_KEY, WRITER_KEY, auth
from tests.e2e import google_helpers
from tests.e2e.apple_helpers import (
    APP_APPLE_ID,
    ISSUER_ID,
    KEY_ID,
    PRODUCT,
    api_key_file,
    apple_config,
    saved_ca,
    scenario,
)
from tests.e2e.google_helpers import google_config, push, sub
from tests.e2e.reconcile_helpers import reconcile
from tests.e2e.replay_helpers import Stores, query
from tests.e2e.test_console_http import page, sign_in
from tests.fakes.fake_appstore import FakeAppStore

APP, LITE, STRANGER = "com.example.app", "com.example.app.lite", "com.example.stranger"
PACKAGE, PACKAGE_LITE = "com.example.app", "com.example.app.lite"
fake_play = google_helpers.fake_play
google_keys = google_helpers.google_keys


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory):
    return saved_ca(tmp_path_factory.mktemp("apple-ca-apps"))


@pytest.fixture(scope="module")
def api_key(tmp_path_factory):
    return api_key_file(tmp_path_factory.mktemp("apple-key-apps"))


@pytest.fixture
async def fake_api(api_key):
    fake = FakeAppStore(
        api_key[0].public_key(),
        KEY_ID,
        ISSUER_ID,
        APP,
        environment="Sandbox",
        other_bundles=(LITE,),
    )
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(make_client, config, ca_dir, api_key, fake_api, fake_play, tmp_path):
    config = apple_config(
        config,
        ca_dir[1],
        issuer_id=ISSUER_ID,
        key_id=KEY_ID,
        private_key_file=str(api_key[1]),
        api_base_url=fake_api.url,
    )
    apple = config["apple"]
    del apple["bundle_id"], apple["app_apple_id"]
    apple["apps"] = [
        {"bundle_id": APP, "app_apple_id": APP_APPLE_ID},
        {"bundle_id": LITE, "app_apple_id": APP_APPLE_ID + 1},
    ]
    google_config(config, fake_play, tmp_path, package_names=[PACKAGE, PACKAGE_LITE])
    return await make_client(config)


def signed_tx(ca: TestCA, clock, tx_id: str, bundle: str) -> str:
    return ca.sign(
        transaction_payload(
            bundle_id=bundle,
            environment="Sandbox",
            transaction_id=tx_id,
            original_transaction_id=tx_id,
            product_id=PRODUCT,
            purchase_date=clock.now - timedelta(days=1),
            signed_date=clock.now,
            expires_date=clock.now + timedelta(days=29),
        )
    )


async def customer(client, user: str) -> dict:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    return await resp.json()


async def test_notifications_of_each_app_are_verified_and_a_stranger_is_refused(
    client, ca_dir, clock
) -> None:
    user = str(uuid.uuid4())
    for bundle, app_id in ((APP, APP_APPLE_ID), (LITE, APP_APPLE_ID + 1)):
        body = scenario(ca_dir[0], user=user, bundle_id=bundle, app_apple_id=app_id).body(
            "subscribe", clock.now
        )
        resp = await client.post("/webhooks/apple", json=body)
        assert (resp.status, await resp.json()) == (200, {"status": "processed"}), bundle
    stranger = scenario(ca_dir[0], user=str(uuid.uuid4()), bundle_id=STRANGER)
    resp = await client.post("/webhooks/apple", json=stranger.body("subscribe", clock.now))
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "wrong_app"
    # One customer, two apps: one entitlement, two purchases, each naming its app.
    got = await customer(client, user)
    assert got["entitlements"]["premium"]["active"] is True
    assert sorted(s["app"] for s in got["subscriptions"]) == [APP, LITE]
    _, cookie = await sign_in(client)  # the console's customer page shows each purchase's app
    status, html = await page(client, f"/console/customers/{user}", cookie)
    assert status == 200
    assert f"<td>{APP}</td>" in html
    assert f"<td>{LITE}</td>" in html


async def test_a_transaction_id_is_asked_of_each_app_and_pulls_only_its_apps_history(
    client, ca_dir, clock, fake_api
) -> None:
    main, lite = signed_tx(ca_dir[0], clock, "2001", APP), signed_tx(ca_dir[0], clock, "3001", LITE)
    fake_api.add_transaction(main)
    fake_api.add_transaction(lite)
    fake_api.requests.clear()
    body = {"app_user_id": "u-lite", "store": "app_store", "transaction_id": "3001"}
    resp = await client.post("/v1/purchases", json=body, headers=auth(WRITER_KEY))
    assert resp.status == 200, await resp.json()
    got = await resp.json()
    assert [(s["original_transaction_id"], s["app"]) for s in got["subscriptions"]] == [
        ("3001", LITE)
    ]  # the history pull of LITE does not bring APP's purchase along
    asked = [r.claims["bid"] for r in fake_api.requests if r.claims is not None]
    first_lite = asked.index(LITE)
    # APP is asked first and does not know it (in either environment); then only LITE.
    assert set(asked[:first_lite]) == {APP}
    assert set(asked[first_lite:]) == {LITE}
    assert (await customer(client, "u-main"))["subscriptions"] == []


async def test_a_signed_transaction_asks_only_its_own_app(client, ca_dir, clock, fake_api) -> None:
    lite = signed_tx(ca_dir[0], clock, "4001", LITE)
    fake_api.add_transaction(lite)
    fake_api.requests.clear()
    body = {"app_user_id": "u-4", "store": "app_store", "signed_transaction": lite}
    resp = await client.post("/v1/purchases", json=body, headers=auth(WRITER_KEY))
    assert resp.status == 200, await resp.json()
    assert {r.claims["bid"] for r in fake_api.requests if r.claims is not None} == {LITE}
    assert [s["app"] for s in (await resp.json())["subscriptions"]] == [LITE]


async def test_each_play_package_names_its_purchases(
    client,
    database_url,
    fake_play,
    google_keys,
    clock,
) -> None:
    for package, token in ((PACKAGE, "tok-main"), (PACKAGE_LITE, "tok-lite")):
        fake_play.set_subscription(package, token, sub(clock, "active", token, user="u-play"))
        note = subscription_notification(package, token, 4, event_time=clock.now)
        status, body = await push(client, google_keys, note, at=clock.now)
        assert (status, body) == (200, {"status": "processed"}), package
    got = await customer(client, "u-play")
    assert got["entitlements"]["premium"]["active"] is True
    assert sorted((s["purchase_token"], s["app"]) for s in got["subscriptions"]) == [
        ("tok-lite", PACKAGE_LITE),
        ("tok-main", PACKAGE),
    ]
    journal = await query(database_url, "SELECT purchase_id, app FROM store_notifications")
    assert sorted(tuple(r) for r in journal) == [("tok-lite", PACKAGE_LITE), ("tok-main", PACKAGE)]


async def test_reconciliation_reads_each_apps_history_and_reports_per_app(
    client,
    ca_dir,
    clock,
    fake_api,
    fake_play,
    google_keys,
    database_url,
) -> None:
    lost = {}
    for bundle, app_id in ((APP, APP_APPLE_ID), (LITE, APP_APPLE_ID + 1)):
        user = str(uuid.uuid4())
        body = scenario(ca_dir[0], user=user, bundle_id=bundle, app_apple_id=app_id).body(
            "subscribe", clock.now
        )
        fake_api.add_notification(body["signedPayload"], result="TIMED_OUT")  # never received
        lost[bundle] = user
    clock.advance(hours=1)
    stores = Stores(
        client,
        client.app[SETTINGS],
        {},
        ca_dir[0],
        fake_api,
        fake_play,
        google_keys,
        clock,
        database_url,
    )
    outcome, observed = await reconcile(stores, Store.APP_STORE)
    assert (outcome.interrupted, observed.failures) == (None, [])
    assert outcome.counts.missing == 2
    # one host answers both environments here (api_base_url), so one listing per app
    assert "notification history (com.example.app, Production)" in " ".join(observed.steps)
    assert "notification history (com.example.app.lite, Production)" in " ".join(observed.steps)
    for bundle, user in lost.items():  # each app's lost purchase, recovered in its own app
        [got] = (await customer(client, user))["subscriptions"]
        assert got["app"] == bundle
    history = [r for r in fake_api.requests if r.path == "/inApps/v1/notifications/history"]
    assert {r.claims["bid"] for r in history if r.claims is not None} == {APP, LITE}


async def test_the_journal_names_each_entrys_app_and_filters_by_it(client, ca_dir, clock) -> None:
    for bundle, app_id in ((APP, APP_APPLE_ID), (LITE, APP_APPLE_ID + 1)):
        body = scenario(
            ca_dir[0], user=str(uuid.uuid4()), bundle_id=bundle, app_apple_id=app_id
        ).body("subscribe", clock.now)
        assert (await client.post("/webhooks/apple", json=body)).status == 200
    _, cookie = await sign_in(client)
    status, everything = await page(client, "/console/journal", cookie)
    assert status == 200
    assert everything.count(f"<td>{LITE}</td>") == 1
    assert everything.count(f"<td>{APP}</td>") == 1
    assert f'<option value="{LITE}" >' in everything  # the filter offers each app
    status, lite = await page(client, f"/console/journal?app={LITE}", cookie)
    assert status == 200
    assert "1 notification(s)" in lite
    assert f"<td>{APP}</td>" not in lite
    assert f'<option value="{LITE}" selected>' in lite
