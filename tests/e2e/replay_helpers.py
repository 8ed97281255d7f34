"""Shared set-up for the replay tests: one app with both stores (Apple with App Store Server API
credentials against a fake API, Google against the fake Play API), store traffic through its
HTTP routes, and replay run in-process on the same database."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cache.answers import CustomerCache, NoCache
from config.settings import Settings
from entitlements.replay import Finding
from server import cli
from server.app import catalog_from
from server.stores import replay_stores
from services.replay import Replayer, Summary
from simulators.apple_ca import TestCA, notification_payload, renewal_payload, transaction_payload
from simulators.google_signer import (
    one_time_notification,
    subscription_notification,
    voided_notification,
)
from simulators.play_purchases import product_purchase
from storage.replay import Selection
from tests.conftest import ADMIN_KEY, WRITER_KEY, Clock, auth
from tests.e2e import google_helpers
from tests.e2e.apple_helpers import APP_APPLE_ID, BUNDLE_ID, PRODUCT, apple_config, scenario
from tests.e2e.google_helpers import (
    LIFETIME,
    MONTHLY,
    PACKAGE,
    USER,
    YEARLY,
    google_config,
    notify,
    push,
    sub,
)
from tests.fakes.fake_appstore import FakeAppStore, app_receipt

BATCH = 7  # small pages: entries spanning pages are the common case in the tests
KEY_ID = "REPLAYKEY1"
ISSUER_ID = "0b7d6f5e-2f6a-4b8e-9a51-000000000001"

google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play


@pytest.fixture(scope="session")
def replay_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    directory = tmp_path_factory.mktemp("replay-ca")
    ca = TestCA.generate()
    ca.save(directory)
    return ca, directory


@pytest.fixture(scope="session")
def replay_api_key(tmp_path_factory) -> tuple[Any, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("replay-key") / "AuthKey.p8"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return key, path


@pytest.fixture
async def fake_api(replay_api_key) -> AsyncIterator[FakeAppStore]:
    fake = FakeAppStore(
        replay_api_key[0].public_key(), KEY_ID, ISSUER_ID, BUNDLE_ID, environment="Sandbox"
    )
    await fake.start()
    yield fake
    await fake.stop()


@dataclass
class Stores:
    """The running app, its settings, and the fakes behind it."""

    client: Any
    settings: Settings
    config: dict[str, Any]
    ca: TestCA
    fake_api: FakeAppStore
    fake_play: Any
    keys: Any
    clock: Clock
    database_url: str


@pytest.fixture
async def stores(
    fake_play, fake_api, make_client, config, replay_ca, replay_api_key, google_keys, clock,
    database_url, tmp_path,
) -> Stores:  # fmt: skip
    cfg = apple_config(
        config,
        replay_ca[1],
        issuer_id=ISSUER_ID,
        key_id=KEY_ID,
        private_key_file=str(replay_api_key[1]),
        api_base_url=fake_api.url,
    )
    cfg = google_config(cfg, fake_play, tmp_path)
    client = await make_client(cfg)
    return Stores(
        client, Settings(**cfg), cfg, replay_ca[0], fake_api, fake_play, google_keys, clock,
        database_url,
    )  # fmt: skip


@pytest.fixture
def command(stores, monkeypatch):
    """`receiptd replay ARGS` with the app's settings; (exit code, stdout lines, stderr)."""
    # main() configures logging for the process (cached structlog loggers would then bypass
    # capture_logs in later tests) and reads a config file: the app's settings stand in.
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    monkeypatch.setattr(cli, "load_settings", lambda _path: stores.settings)

    async def run(*args: str, capsys) -> tuple[int, list[str], str]:
        capsys.readouterr()  # the app's own log lines so far
        code = await asyncio.to_thread(cli.main, ["replay", *args])
        captured = capsys.readouterr()
        # The real command logs to stderr; with its logging set-up skipped, the adapters'
        # info lines (re-deriving an entry logs as processing it did) land on stdout.
        report = [line for line in captured.out.splitlines() if not LOG_LINE.match(line)]
        return code, report, captured.err

    return run


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
LINE = re.compile(
    r"^(app_store|play_store) ([0-9a-f]{12}) customer=(\S+) "
    r"(differs|fixed|not fixed|not re-derivable|missing|recreated|recreated without a known owner"
    r"|not recreated|missing, not re-derivable): (.+)$"
)
# groups: checked, differ, missing, not re-derivable, fixed, entries, ownerless, cache
SUMMARY = re.compile(
    r"^replay: (\d+) purchases checked, (\d+) differ, (\d+) missing, (\d+) not re-derivable, "
    r"(\d+) fixed \((\d+) journal entries re-derived\)"
    r"(?:, (\d+) recreated without a known owner)?(; cache: .+)?$"
)


async def replay(
    s: Stores,
    selection: Selection | None = None,
    *,
    fix: bool = False,
    cache: CustomerCache | None = None,
) -> tuple[Summary, list[tuple[Finding, str]]]:
    """One replay of the test's database with the app's settings; (summary, reported)."""
    return await replay_database(
        s.settings, s.database_url, s.clock, selection, fix=fix, cache=cache
    )


async def replay_database(
    settings: Settings,
    database_url: str,
    clock: Clock,
    selection: Selection | None = None,
    *,
    fix: bool = False,
    cache: CustomerCache | None = None,
) -> tuple[Summary, list[tuple[Finding, str]]]:
    """One replay of a database with these settings; (summary, what it reported)."""
    reported: list[tuple[Finding, str]] = []
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        catalog = catalog_from(settings)
        async with replay_stores(settings, pool, clock, catalog) as adapters:
            replayer = Replayer(pool, adapters, catalog, clock, cache or NoCache(), batch=BATCH)
            summary = await replayer.run(
                selection or Selection(),
                fix=fix,
                report=lambda finding, outcome: reported.append((finding, outcome)),
            )
    finally:
        await pool.close()
    return summary, reported


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


# --- store traffic -----------------------------------------------------------------------


async def apple_notify(s: Stores, body: dict[str, str]) -> None:
    resp = await s.client.post("/webhooks/apple", json=body)
    assert (resp.status, await resp.json()) == (200, {"status": "processed"})


async def submit(s: Stores, body: dict[str, Any]) -> dict[str, Any]:
    resp = await s.client.post("/v1/purchases", json=body, headers=auth(WRITER_KEY))
    got: dict[str, Any] = await resp.json()
    assert resp.status == 200, got
    return got


def apple_tx(s: Stores, tx_id: str, original: str, month: int, **extra: Any) -> str:
    """A signed monthly-subscription transaction of period `month` (0 = the oldest)."""
    start = s.clock.now - timedelta(days=30 * (24 - month))
    fields: dict[str, Any] = {"expires_date": start + timedelta(days=30)} | extra
    return s.ca.sign(
        transaction_payload(
            bundle_id=BUNDLE_ID,
            environment="Sandbox",
            transaction_id=tx_id,
            original_transaction_id=original,
            product_id=PRODUCT,
            purchase_date=start,
            signed_date=s.clock.now,
            **fields,
        )
    )


async def apple_grace_from_the_status_api(s: Stores, user: str) -> None:
    """DID_FAIL_TO_RENEW/GRACE_PERIOD without its end date: completed from the status API."""
    tx = apple_tx(s, "7001", "7001", 23, appAccountToken=user)
    renewal = {
        "environment": "Sandbox",
        "original_transaction_id": "7001",
        "product_id": PRODUCT,
        "signed_date": s.clock.now,
        "isInBillingRetryPeriod": True,
    }
    grace_end = int((s.clock.now + timedelta(days=16)).timestamp() * 1000)
    s.fake_api.add_transaction(tx, in_history=False)
    s.fake_api.set_status(
        tx, s.ca.sign(renewal_payload(**renewal, gracePeriodExpiresDate=grace_end)), 4
    )
    note = notification_payload(
        notification_type="DID_FAIL_TO_RENEW",
        subtype="GRACE_PERIOD",
        bundle_id=BUNDLE_ID,
        environment="Sandbox",
        signed_date=s.clock.now,
        app_apple_id=APP_APPLE_ID,
        signed_transaction=tx,
        signed_renewal=s.ca.sign(renewal_payload(**renewal)),
        status=4,
    )
    await apple_notify(s, {"signedPayload": s.ca.sign(note)})


async def apple_traffic(s: Stores) -> str:
    """Notifications of one lifecycle, a grace period completed from the status API, and
    submissions (transaction id, receipt, signed transaction) of an account whose history
    spans two pages and more transactions than a state keeps. Returns the notified user."""
    user = str(uuid.uuid4())
    lifecycle = scenario(s.ca, user=user)
    for event in ("subscribe", "renew", "cancel", "uncancel", "fail", "billing-recovery"):
        await apple_notify(s, lifecycle.body(event, s.clock.now))
        s.clock.advance(hours=2)
    await apple_grace_from_the_status_api(s, str(uuid.uuid4()))
    s.clock.advance(hours=1)
    # 21 monthly periods of subscription 9000 and a lifetime purchase: two history pages.
    history = [apple_tx(s, str(9000 + m), "9000", m) for m in range(21)]
    lifetime = s.ca.sign(
        transaction_payload(
            bundle_id=BUNDLE_ID,
            environment="Sandbox",
            transaction_id="9100",
            original_transaction_id="9100",
            product_id="com.example.lifetime",
            product_type="Non-Consumable",
            purchase_date=s.clock.now - timedelta(days=3),
            signed_date=s.clock.now,
        )
    )
    for signed in [*history, lifetime]:
        s.fake_api.add_transaction(signed)
    renewal = renewal_payload(
        environment="Sandbox",
        original_transaction_id="9000",
        product_id=PRODUCT,
        signed_date=s.clock.now,
        auto_renew=False,
        auto_renew_product_id=PRODUCT,
        renewal_date=s.clock.now + timedelta(days=20),
    )
    s.fake_api.set_status(history[-1], s.ca.sign(renewal), 1)
    buyer = "u-apple-buyer"
    s.fake_api.fail_next(404, 4040010)  # "not in this environment": Production, then Sandbox
    await submit(s, {"app_user_id": buyer, "store": "app_store", "transaction_id": "9020"})
    s.clock.advance(minutes=5)
    receipt = app_receipt(["9100"])
    await submit(s, {"app_user_id": buyer, "store": "app_store", "receipt": receipt})
    s.clock.advance(minutes=5)
    await submit(s, {"app_user_id": buyer, "store": "app_store", "signed_transaction": history[-1]})
    return user


def play_submission(product: str, token: str, **extra: Any) -> dict[str, Any]:
    return {
        "app_user_id": USER,
        "store": "play_store",
        "package_name": PACKAGE,
        "product_id": product,
        "purchase_token": token,
        **extra,
    }


async def google_traffic(s: Stores) -> None:
    """Pushes of a lifecycle with a plan change (linkedPurchaseToken), a replacement of a
    token never seen, voided purchases (one during a Play API outage), a one-time product, a
    token Play no longer knows (410), and submissions (a subscription; a one-time product
    without a type, found with products.get after subscriptionsv2 says 404)."""
    c, fake, keys, clock = s.client, s.fake_play, s.keys, s.clock

    async def pushed(note: dict[str, Any]) -> None:
        assert await push(c, keys, note, at=clock.now) == (200, {"status": "processed"})

    await notify(c, fake, keys, clock, 4, "active", "tok-a")
    clock.advance(days=3)
    await notify(
        c, fake, keys, clock, 4, "active", "tok-b", product_id=YEARLY, linked_token="tok-a",
        acknowledged=False,
    )  # fmt: skip
    clock.advance(hours=1)
    await notify(c, fake, keys, clock, 13, "expired", "tok-a")
    clock.advance(hours=1)
    await notify(c, fake, keys, clock, 4, "active", "tok-c", linked_token="tok-never-seen")
    clock.advance(hours=1)
    await pushed(voided_notification(PACKAGE, "tok-b", "GPA.1", event_time=clock.now))
    clock.advance(hours=1)
    fake.deny = True  # the revocation still applies, from the notification alone
    await pushed(voided_notification(PACKAGE, "tok-c", "GPA.2", event_time=clock.now))
    fake.deny = False
    clock.advance(hours=1)
    fake.set_product(
        PACKAGE, LIFETIME, "p-1", product_purchase(LIFETIME, purchase_time=clock.now, user=USER)
    )
    await pushed(one_time_notification(PACKAGE, "p-1", LIFETIME, 1, event_time=clock.now))
    clock.advance(hours=1)
    await notify(c, fake, keys, clock, 4, "active", "tok-g")
    clock.advance(days=90)
    fake.gone.add("tok-g")
    await pushed(subscription_notification(PACKAGE, "tok-g", 13, event_time=clock.now))
    clock.advance(hours=1)
    fake.set_subscription(PACKAGE, "tok-s", sub(clock, "active", "tok-s"))
    await submit(s, play_submission(MONTHLY, "tok-s"))
    clock.advance(hours=1)
    fake.set_product(PACKAGE, LIFETIME, "p-2", product_purchase(LIFETIME, purchase_time=clock.now))
    await submit(s, play_submission(LIFETIME, "p-2"))


# --- lost rows -----------------------------------------------------------------------------

# Every column of a purchase row that replay must restore. Left out: `id` (a surrogate key
# nothing references), `updated_at` and `linked_at` (the time of the write that stored or
# linked the row: the database's clock at the recreation, like any write's).
NOT_RESTORED = {"id", "updated_at", "linked_at"}


async def snapshot(database_url: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every purchase row, (store, purchase id) → its columns but NOT_RESTORED."""
    rows = await query(database_url, "SELECT * FROM purchases")
    return {
        (r["store"], r["purchase_id"]): {k: v for k, v in dict(r).items() if k not in NOT_RESTORED}
        for r in rows
    }


@dataclass
class Mix:
    """Who owns what after `realistic_mix`."""

    apple_notified: str  # owner by Apple's appAccountToken
    apple_buyer: str  # owner by submissions
    transferred_to: str
    transferred_from: str
    merged_into: str
    merged_alias: str
    erased: str  # the erased person's id (gone: their purchase is the pseudonym's)


async def realistic_mix(s: Stores) -> Mix:
    """Apple notifications (owner from appAccountToken) and submissions (owner: the
    submitter), Google pushes with Play reads (a plan-change chain: linkedPurchaseToken,
    superseded) and submissions, a purchase transferred between users, one whose customer
    was merged by alias (and one linked through the alias after the merge), one whose
    customer was erased (with a statement after the erasure)."""
    apple_user = await apple_traffic(s)
    await google_traffic(s)
    # Transferred: a Play token proves whoever submits it holds it.
    s.fake_play.set_subscription(PACKAGE, "tok-t", sub(s.clock, "active", "tok-t", user=None))
    await submit(s, play_submission(MONTHLY, "tok-t") | {"app_user_id": "u-first"})
    s.clock.advance(minutes=5)
    await submit(s, play_submission(MONTHLY, "tok-t") | {"app_user_id": "u-second"})
    # Merged: an anonymous id's purchase moves to the customer; a later hint naming the
    # alias links to the customer too.
    anonymous = str(uuid.uuid4())
    await apple_notify(s, scenario(s.ca, user=anonymous).body("subscribe", s.clock.now))
    resp = await s.client.post(
        "/v1/customers/u-merged/aliases", json={"alias": anonymous}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    s.clock.advance(minutes=5)
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-m", user=anonymous)
    # Erased, then renewed: the purchase stays with the pseudonym.
    person = str(uuid.uuid4())
    lifecycle = scenario(s.ca, user=person)
    await apple_notify(s, lifecycle.body("subscribe", s.clock.now))
    resp = await s.client.delete(f"/v1/customers/{person}", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    s.clock.advance(hours=1)
    await apple_notify(s, lifecycle.body("renew", s.clock.now))
    return Mix(apple_user, "u-apple-buyer", "u-second", "u-first", "u-merged", anonymous, person)
