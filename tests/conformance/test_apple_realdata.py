"""What Apple really sends, through the real service over HTTP: real App Store Server
Notifications V2 (Sandbox, signed by Apple's production chain) and Apple's own library test
vectors, read at test time from ../shared/realdata and verified by the production path
(`[apple] root_certificates` = the real Apple Root CA - G3, online checks off, so each JWS is
checked at its own signedDate). Expectations come from contract §3 and the payloads' fields;
the clock is always set from the payloads' dates, never read from the wall."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.keys import APPLE
from config.settings import Settings
from server.app import create_app
from tests.conformance.apple_realdata import (
    BUNDLE_ID,
    ENTITLEMENT,
    LIBRARY_APP_APPLE_ID,
    LIBRARY_BUNDLE_ID,
    PRODUCTS,
    RealNotification,
    apple_section,
    edit_one_digit,
    instant,
    iso,
    just_after,
    library_vector,
    load_notification,
    realdata_config,
    session_notifications,
    stored,
    unverified_payload,
)
from tests.conftest import ADMIN_KEY, WRITER_KEY, auth, base_config, with_database
from tests.contract import ENTITLEMENT_FIELDS
from tests.e2e.replay_helpers import replay_database

USER = "u-session-pro"
NOTHING = {"journal": [], "submissions": [], "purchases": [], "events": []}


async def post_notification(client, jws: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/webhooks/apple", json={"signedPayload": jws})
    return resp.status, await resp.json()


async def submit_transaction(client, user: str, jws: str) -> tuple[int, dict[str, Any]]:
    """POST /v1/purchases as the app does right after a StoreKit 2 purchase (contract §3)."""
    resp = await client.post(
        "/v1/purchases",
        json={"app_user_id": user, "store": "app_store", "signed_transaction": jws},
        headers=auth(WRITER_KEY),
    )
    return resp.status, await resp.json()


async def customer(client, user: str = USER) -> dict[str, Any]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    return await resp.json()


async def entitlement_summary(client, user: str = USER) -> dict[str, Any]:
    resp = await client.get(
        f"/v1/customers/{user}/entitlements/{ENTITLEMENT}", headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200
    return await resp.json()


def error_code(status: int, body: dict[str, Any]) -> tuple[int, str]:
    assert body["error"]["message"]
    return status, body["error"]["code"]


# --- 1. the 16 real notifications of one original transaction -------------------------


@dataclass(frozen=True)
class Step:
    """What the entitlement reads just after a notification, in the notifications' words."""

    current: str  # the notification whose nested transaction is the current period
    status: str
    active: bool
    will_renew: bool
    turned_off_by: str | None  # whose renewal info turned auto-renew off (None: it is on)


# In signedDate order. Upgrades take effect at once (session-21: new transaction, pro_sub); a
# queued downgrade re-enables auto-renew (session-23); session-31/32 are about an OLDER
# transaction, so the current period stays session-30's.
STEPS = {
    "session-01": Step("session-01", "active", True, True, None),
    "session-02": Step("session-02", "expired", False, False, "session-02"),
    "session-10": Step("session-10", "active", True, True, None),
    "session-11": Step("session-11", "active", True, False, "session-11"),
    "session-12": Step("session-12", "expired", False, False, "session-11"),
    "session-20": Step("session-20", "active", True, True, None),
    "session-21": Step("session-21", "active", True, True, None),
    "session-22": Step("session-22", "active", True, False, "session-22"),
    "session-23": Step("session-23", "active", True, True, None),
    "session-24": Step("session-24", "active", True, True, None),
    "session-25": Step("session-25", "active", True, False, "session-25"),
    "session-26": Step("session-26", "expired", False, False, "session-25"),
    "session-30": Step("session-30", "active", True, True, None),
    "session-31": Step("session-30", "active", True, True, None),
    "session-32": Step("session-30", "active", True, True, None),
}


def expected_entitlement(notes: dict[str, RealNotification], step: Step) -> dict[str, Any]:
    """Contract §3 fields from the signed data: times are the store's own (auto-renew turned
    off = that renewal info's signedDate), RFC 3339 UTC to the second."""
    tx = notes[step.current].transaction
    turned_off = notes[step.turned_off_by].renewal if step.turned_off_by else None
    return {
        "active": step.active,
        "status": step.status,
        "period_type": "normal",  # no offer in any of these transactions
        "will_renew": step.will_renew,
        "expires_at": iso(tx["expiresDate"]),
        "grace_period_expires_at": None,
        "product_id": tx["productId"],
        "store": "app_store",
        "is_sandbox": True,
        "purchased_at": iso(tx["purchaseDate"]),
        "unsubscribe_detected_at": iso(turned_off["signedDate"]) if turned_off else None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }


def contract_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ENTITLEMENT_FIELDS}


async def test_real_lifecycle_in_order(make_client, config, clock, realdata, database_url) -> None:
    client = await make_client(realdata_config(config, realdata))
    ordered = session_notifications(realdata)
    notes = {n.name: n for n in ordered}
    test_note, lifecycle = ordered[0], ordered[1:]
    assert (test_note.name, test_note.notification_type) == ("session-00", "TEST")
    assert [n.name for n in lifecycle] == list(STEPS)
    original_id = lifecycle[0].transaction["originalTransactionId"]
    assert {n.transaction["originalTransactionId"] for n in lifecycle} == {original_id}
    assert all("appAccountToken" not in n.transaction for n in lifecycle)

    clock.now = just_after(test_note.signed_ms)
    assert await post_notification(client, test_note.jws) == (200, {"status": "ignored"})

    # No appAccountToken: the purchase is linked by the app submitting its signed transaction.
    clock.now = just_after(lifecycle[0].signed_ms)
    status, body = await submit_transaction(client, USER, lifecycle[0].signed_transaction)
    assert status == 200, body
    assert [s["original_transaction_id"] for s in body["subscriptions"]] == [original_id]

    for note in lifecycle:
        clock.now = just_after(note.signed_ms)
        assert await post_notification(client, note.jws) == (200, {"status": "processed"}), note
        got = await customer(client)
        expected = expected_entitlement(notes, STEPS[note.name])
        assert got["entitlements"] == {ENTITLEMENT: expected}, note.name
        [sub] = got["subscriptions"]
        assert contract_fields(sub) == expected, note.name
        assert sub["original_transaction_id"] == original_id
        assert got["purchases"] == []

    # After the last period's end (auto-renew on, but no renewal came): expired, not revoked.
    end = notes["session-30"].transaction["expiresDate"]
    clock.now = just_after(end) + timedelta(days=30)
    final = (await customer(client))["entitlements"][ENTITLEMENT]
    assert (final["status"], final["active"], final["revoked_at"]) == ("expired", False, None)
    assert final["expires_at"] == iso(end)
    assert await entitlement_summary(client) == {
        "app_user_id": USER,
        "entitlement": ENTITLEMENT,
        "active": False,
        "status": "expired",
        "expires_at": iso(end),
    }

    journal = (await stored(database_url))["journal"]
    assert [(r["message_id"], r["notification_type"], r["result"]) for r in journal] == [
        (test_note.uuid, "TEST", "ignored"),
        *[(n.uuid, n.notification_type, "processed") for n in lifecycle],
    ]
    assert [r["signed_at"] for r in journal] == [instant(n.signed_ms) for n in ordered]
    assert {r["purchase_id"] for r in journal[1:]} == {original_id}
    submitted = (await stored(database_url))["submissions"]
    assert submitted == [{"purchase_id": original_id, "result": "processed"}]

    # The real journal replays to exactly what is stored, Apple's signatures verified again.
    summary, reported = await replay_database(Settings(**config), database_url, clock)
    assert reported == []
    assert (summary.checked, summary.entries, summary.differing) == (1, 16, 0)


@pytest.fixture
async def fresh_client(
    clones, redis_url, aiohttp_client, clock, realdata, tmp_path
) -> AsyncIterator[Callable[[], Awaitable[tuple[Any, str]]]]:
    """Start the real app on a NEW database cloned from the template, as often as asked."""
    names: list[str] = []
    clients: list[Any] = []

    async def start() -> tuple[Any, str]:
        name = await clones.take()
        names.append(name)
        url = with_database(clones.server_url, name)
        cfg = realdata_config(base_config(url, redis_url, tmp_path), realdata)
        client = await aiohttp_client(create_app(Settings(**cfg), clock=clock))
        clients.append(client)
        return client, url

    try:
        yield start
    finally:
        for client in clients:
            await client.close()  # before the drop: the app's pool lets go first
        for name in names:
            clones.give_back(name)


LINK = None  # a place in a delivery sequence where the app submits its purchase


def delivery(ordered: list[RealNotification], order: str | int) -> list[RealNotification | None]:
    """The notifications (and the app's submission, `LINK`) in a fixed permutation: reversed,
    or shuffled by a seed with 5 notifications delivered twice (Apple retries)."""
    if order == "in order":
        return [LINK, *ordered]
    if order == "reversed":
        return [*reversed(ordered), LINK]
    rng = random.Random(order)
    lifecycle = [n for n in ordered if n.notification_type != "TEST"]
    sequence: list[RealNotification | None] = [*ordered, *rng.sample(lifecycle, 5)]
    rng.shuffle(sequence)
    sequence.insert(rng.randrange(len(sequence) + 1), LINK)
    return sequence


async def test_any_order_with_duplicates_gives_the_same_customer(
    fresh_client, clock, realdata
) -> None:
    ordered = session_notifications(realdata)
    notes = {n.name: n for n in ordered}
    link = notes["session-01"].signed_transaction
    end = notes["session-30"].transaction["expiresDate"]
    inside = just_after(notes["session-32"].signed_ms)  # every notification sent, period running
    assert inside < instant(end)
    after = just_after(end) + timedelta(days=30)

    outcomes: dict[str | int, Any] = {}
    for run, order in enumerate(("in order", "reversed", 1, 2, 3)):
        client, url = await fresh_client()
        user = f"u-run-{run}"  # one Redis for all runs: keep their cache keys apart
        clock.now = inside
        seen: set[str] = set()
        for note in delivery(ordered, order):
            if note is LINK:
                status, body = await submit_transaction(client, user, link)
                assert status == 200, (order, body)
                continue
            answer = "ignored" if note.notification_type == "TEST" else "processed"
            if note.uuid in seen:
                answer = "duplicate"
            seen.add(note.uuid)
            got = await post_notification(client, note.jws)
            assert got == (200, {"status": answer}), (order, note.name)
        snapshots = []
        for moment in (inside, after):
            clock.now = moment
            body = await customer(client, user)
            snapshots.append({**body, "app_user_id": USER})
        journal = sorted(
            (r["message_id"], r["result"], r["signed_at"]) for r in (await stored(url))["journal"]
        )
        outcomes[order] = (snapshots, journal)

    reference = outcomes.pop("in order")
    for order, outcome in outcomes.items():
        assert outcome == reference, f"delivery order {order!r} ends differently"
    at_inside, at_after = reference[0]
    assert at_inside["entitlements"] == {
        ENTITLEMENT: expected_entitlement(notes, STEPS["session-32"])
    }
    assert at_after["entitlements"][ENTITLEMENT]["status"] == "expired"
    assert len(reference[1]) == 16


# --- 2. a refund of an older transaction -------------------------------------------------


@pytest.mark.parametrize("order", ["as sent", "reversed"])
async def test_refund_of_an_older_transaction_keeps_the_current_period(
    make_client, config, clock, realdata, database_url, order
) -> None:
    client = await make_client(realdata_config(config, realdata))
    subscribed, consumption, refund = (
        load_notification(realdata, n) for n in ("session-30", "session-31", "session-32")
    )
    current, refunded = subscribed.transaction, refund.transaction
    # The premise, from the signed data: the refund is of another, older transaction of the
    # same subscription, and Apple still reports the subscription active (status 1).
    assert refund.notification_type == "REFUND"
    assert refund.payload["data"]["status"] == 1
    assert refunded["originalTransactionId"] == current["originalTransactionId"]
    assert refunded["transactionId"] == consumption.transaction["transactionId"]
    assert refunded["transactionId"] != current["transactionId"]
    assert refunded["purchaseDate"] < current["purchaseDate"]
    assert "revocationDate" in refunded
    assert refund.renewal["autoRenewStatus"] == 1
    end = current["expiresDate"]
    inside = just_after(refund.signed_ms)
    assert inside < instant(end)
    expected = {
        "active": True,
        "status": "active",
        "period_type": "normal",
        "will_renew": True,
        "expires_at": iso(end),
        "grace_period_expires_at": None,
        "product_id": current["productId"],
        "store": "app_store",
        "is_sandbox": True,
        "purchased_at": iso(current["purchaseDate"]),
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }

    if order == "as sent":
        clock.now = just_after(subscribed.signed_ms)
        status, body = await submit_transaction(client, USER, subscribed.signed_transaction)
        assert status == 200, body
        for note in (subscribed, consumption, refund):
            clock.now = just_after(note.signed_ms)
            assert await post_notification(client, note.jws) == (200, {"status": "processed"})
            got = (await customer(client))["entitlements"]
            assert got == {ENTITLEMENT: expected}, note.name
    else:
        # The refund first, the purchase it does not concern last, linked afterwards.
        clock.now = inside
        for note in (refund, consumption, subscribed):
            assert await post_notification(client, note.jws) == (200, {"status": "processed"})
        status, body = await submit_transaction(client, USER, subscribed.signed_transaction)
        assert status == 200, body

    clock.now = inside
    got = await customer(client)
    assert got["entitlements"] == {ENTITLEMENT: expected}
    [sub] = got["subscriptions"]
    assert contract_fields(sub) == expected
    assert (await entitlement_summary(client))["active"] is True

    # The period then ends normally: expired, never revoked.
    clock.now = just_after(end)
    ended = (await customer(client))["entitlements"][ENTITLEMENT]
    assert (ended["status"], ended["active"], ended["revoked_at"]) == ("expired", False, None)
    journal = (await stored(database_url))["journal"]
    assert sorted(r["result"] for r in journal) == ["processed"] * 3


# --- 3. edited signed data ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["signedDate", "status"])
async def test_edited_notification_is_422_and_changes_nothing(
    make_client, config, clock, realdata, database_url, key
) -> None:
    client = await make_client(realdata_config(config, realdata))
    subscribed, refund = (load_notification(realdata, n) for n in ("session-30", "session-32"))
    clock.now = just_after(subscribed.signed_ms)
    assert (await submit_transaction(client, USER, subscribed.signed_transaction))[0] == 200
    assert await post_notification(client, subscribed.jws) == (200, {"status": "processed"})
    clock.now = just_after(refund.signed_ms)
    before, before_db = await customer(client), await stored(database_url)

    edited, old, new = edit_one_digit(refund.jws, key)
    original = refund.payload
    changed = unverified_payload(edited)
    assert old != new
    assert sum(a != b for a, b in zip(edited, refund.jws, strict=True)) == 1
    assert changed["notificationUUID"] == original["notificationUUID"]

    status, body = await post_notification(client, edited)
    assert error_code(status, body) == (422, "verification_failed")
    assert await customer(client) == before
    assert await stored(database_url) == before_db
    # The rejected copy did not take the notificationUUID: the genuine one is still processed.
    assert await post_notification(client, refund.jws) == (200, {"status": "processed"})


async def test_edited_signed_transaction_is_422_and_changes_nothing(
    make_client, config, clock, realdata, database_url
) -> None:
    client = await make_client(realdata_config(config, realdata))
    subscribed = load_notification(realdata, "session-30")
    edited, old, new = edit_one_digit(subscribed.signed_transaction, "expiresDate")
    assert old != new
    clock.now = just_after(subscribed.signed_ms)
    status, body = await submit_transaction(client, USER, edited)
    assert error_code(status, body) == (422, "verification_failed")
    got = await customer(client)
    assert (got["entitlements"], got["subscriptions"], got["purchases"]) == ({}, [], [])
    assert await stored(database_url) == NOTHING


# --- 4. other apps -----------------------------------------------------------------------

OTHER_APPS = (
    "prod-test-nineton-taller",  # TEST, Production
    "test-2022-abilities",  # TEST, Sandbox, leaf expired since
    "felo-one-time-charge",
    "felo-consumption-request",
    "felo-refund-consumable-1",
    "felo-refund-consumable-2",
)


@pytest.mark.parametrize("environments", [("Sandbox",), ("Sandbox", "Production")])
async def test_signed_data_of_other_apps_is_422_and_changes_nothing(
    make_client, config, clock, realdata, database_url, environments
) -> None:
    client = await make_client(realdata_config(config, realdata, environments))
    for name in OTHER_APPS:
        note = load_notification(realdata, name)
        assert note.payload["data"]["bundleId"] != BUNDLE_ID
        clock.now = just_after(note.signed_ms)
        status, body = await post_notification(client, note.jws)
        assert error_code(status, body) == (422, "wrong_app"), name
    # A real signed transaction of another app, submitted as a purchase.
    other = load_notification(realdata, "storekit2-transaction-consumable-jpy").jws
    assert unverified_payload(other)["bundleId"] != BUNDLE_ID
    status, body = await submit_transaction(client, USER, other)
    assert error_code(status, body) == (422, "wrong_app")
    got = await customer(client)
    assert (got["entitlements"], got["subscriptions"], got["purchases"]) == ({}, [], [])
    assert await stored(database_url) == NOTHING


async def test_real_data_verifies_with_its_app_among_others(
    make_client, config, clock, realdata
) -> None:
    """Several apps in one deployment (issue 20): the real notifications verify against the
    app their bundleId names, listed after another app; the purchase names its app."""
    config = realdata_config(config, realdata)
    section = config["apple"]
    real = {"bundle_id": section.pop("bundle_id"), "app_apple_id": section.pop("app_apple_id")}
    section["apps"] = [{"bundle_id": "com.example.another", "app_apple_id": 1}, real]
    client = await make_client(config)
    lifecycle = session_notifications(realdata)[1:]
    clock.now = just_after(lifecycle[0].signed_ms)
    status, body = await submit_transaction(client, USER, lifecycle[0].signed_transaction)
    assert status == 200, body
    for note in lifecycle[:3]:
        clock.now = just_after(note.signed_ms)
        assert await post_notification(client, note.jws) == (200, {"status": "processed"})
    [sub] = (await customer(client))["subscriptions"]
    assert sub["app"] == BUNDLE_ID
    for name in OTHER_APPS:  # an app no [[apple.apps]] names is still refused
        note = load_notification(realdata, name)
        clock.now = just_after(note.signed_ms)
        assert error_code(*await post_notification(client, note.jws)) == (422, "wrong_app")


# --- 5. Apple's own library vectors --------------------------------------------------------

TEST_NOTIFICATION = "mock_signed_data/testNotification"
WRONG_BUNDLE_ID = "mock_signed_data/wrongBundleId"
MISSING_X5C = "mock_signed_data/missingX5CHeaderClaim"
XCODE = (
    "xcode/xcode-signed-transaction",
    "xcode/xcode-signed-renewal-info",
    "xcode/xcode-signed-app-transaction",
)


def library_config(
    config: dict[str, Any],
    realdata: Path,
    environments: tuple[str, ...] = ("Sandbox",),
    app_apple_id: int = LIBRARY_APP_APPLE_ID,
) -> dict[str, Any]:
    """Trust Apple's TEST root (not the real one), for bundle com.example as Apple's tests do."""
    config["apple"] = apple_section(
        realdata / "apple-library" / "certs" / "testCA.der",
        bundle_id=LIBRARY_BUNDLE_ID,
        app_apple_id=app_apple_id,
        environments=environments,
    )
    config["entitlements"] = {ENTITLEMENT: {"products": list(PRODUCTS)}}
    return config


def relax_strict_chain_checks(client) -> None:
    """Do to the running service what Apple's own tests do to their verifier for these
    vectors (tests/util.py: `verifier._chain_verifier.enable_strict_checks = False  # We don't
    have authority identifiers on test certs`). Production code and settings are unchanged;
    the flag is shared by every environment's verifier through the chain cache."""
    verifier = client.app[APPLE].verifier
    library_chain_verifier = verifier.chain_cache._inner
    assert library_chain_verifier.enable_strict_checks is True  # what production runs with
    library_chain_verifier.enable_strict_checks = False


async def test_apple_test_ca_chain_fails_the_production_chain_checks(
    make_client, config, clock, realdata, database_url
) -> None:
    """Apple's test certificates have no authority key identifier, which OpenSSL's X509_STRICT
    (on by default in Apple's library, and so in receiptd) refuses: the production verifier
    rejects Apple's test vectors, like Apple's library does with its default settings."""
    client = await make_client(library_config(config, realdata, ("Sandbox", "Production")))
    jws = library_vector(realdata, TEST_NOTIFICATION)
    clock.now = just_after(unverified_payload(jws)["signedDate"])
    status, body = await post_notification(client, jws)
    assert error_code(status, body) == (422, "verification_failed")
    assert await stored(database_url) == NOTHING


@pytest.mark.parametrize(
    ("vector", "environments", "app_apple_id", "expected"),
    [
        (TEST_NOTIFICATION, ("Sandbox",), 1234, (200, "ignored")),
        (TEST_NOTIFICATION, ("Sandbox", "Production"), 1234, (200, "ignored")),
        (TEST_NOTIFICATION, ("Production",), 1234, (422, "wrong_environment")),
        (TEST_NOTIFICATION, ("Production",), 1235, (422, "wrong_app")),
        (WRONG_BUNDLE_ID, ("Sandbox",), 1234, (422, "wrong_app")),
        (MISSING_X5C, ("Sandbox",), 1234, (422, "verification_failed")),
        *[(x, ("Sandbox", "Production"), 1234, (422, "verification_failed")) for x in XCODE],
    ],
)
async def test_apple_library_vectors_as_apples_tests_verify_them(
    make_client, config, clock, realdata, database_url, vector, environments, app_apple_id, expected
) -> None:
    client = await make_client(library_config(config, realdata, environments, app_apple_id))
    relax_strict_chain_checks(client)
    jws = library_vector(realdata, vector)
    # wrongBundleId and missingX5CHeaderClaim carry no signedDate (Apple's library then checks
    # the chain "now"; the test CA is valid until 2033); the clock only stamps our records.
    dated = unverified_payload(jws).get("signedDate") and jws
    signed = unverified_payload(dated or library_vector(realdata, TEST_NOTIFICATION))
    clock.now = just_after(int(signed["signedDate"]))
    status, body = await post_notification(client, jws)
    if expected[0] == 200:
        assert (status, body) == (200, {"status": expected[1]})
        [row] = (await stored(database_url))["journal"]
        assert (row["message_id"], row["notification_type"], row["result"]) == (
            unverified_payload(jws)["notificationUUID"],
            "TEST",
            "ignored",
        )
    else:
        assert error_code(status, body) == expected
        assert await stored(database_url) == NOTHING


@pytest.mark.parametrize("vector", XCODE)
async def test_xcode_signed_data_is_rejected_by_a_store_service(
    make_client, config, clock, realdata, database_url, vector
) -> None:
    """StoreKit Testing in Xcode signs with a one-certificate chain; a service accepting
    Sandbox and Production (real Apple root) must refuse it on both endpoints."""
    client = await make_client(realdata_config(config, realdata, ("Sandbox", "Production")))
    jws = library_vector(realdata, vector)
    payload = unverified_payload(jws)  # fractional milliseconds, as Xcode writes them
    clock.now = just_after(int(payload.get("signedDate") or payload["receiptCreationDate"]))
    assert (await post_notification(client, jws))[0] == 422
    status, body = await submit_transaction(client, USER, jws)
    assert status == 422, body
    assert await stored(database_url) == NOTHING
