"""Operators and customers over HTTP (contract §3 "Operators and internal services", §4):
grants, suspension, aliases, export and erasure, against real PostgreSQL and Redis, with
store data signed by the local Apple test CA (the production verification path)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest

from entitlements.duration import parse_duration
from simulators.apple_ca import TestCA
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth
from tests.e2e.apple_helpers import apple_config, scenario

GRANTS = "/v1/customers/{}/entitlements/premium/grants"


@pytest.fixture(scope="module")
def apple_ca(tmp_path_factory) -> tuple[TestCA, Path]:
    ca_dir = tmp_path_factory.mktemp("apple-ca-customers")
    ca = TestCA.generate()
    ca.save(ca_dir)
    return ca, ca_dir


@pytest.fixture
async def app(make_client, config, apple_ca):
    return await make_client(apple_config(config, apple_ca[1]))


def user_token(sub: str) -> dict[str, str]:
    return user_auth(sub)


YEAR = timedelta(days=365)


def iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def naive(when) -> str:
    """A timestamp without a zone (refused: the API takes UTC offsets only)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S")


async def call(app, method: str, path: str, key: str | None = ADMIN_KEY, **kw) -> tuple[int, Any]:
    headers = kw.pop("headers", None) or (auth(key) if key else {})
    resp = await app.request(method, path, headers=headers, **kw)
    body = await resp.json() if resp.content_type == "application/json" else None
    return resp.status, body


async def customer(app, user: str) -> dict[str, Any]:
    status, body = await call(app, "GET", f"/v1/customers/{user}", READER_KEY)
    assert status == 200
    return body


async def subscribe(app, apple_ca, clock, user: str, event: str = "subscribe"):
    """A real signed App Store subscription of `user` (appAccountToken = the user's UUID)."""
    s = scenario(apple_ca[0], user=user)
    resp = await app.post("/webhooks/apple", json=s.body(event, clock.now))
    assert resp.status == 200
    return s


async def rows(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


# --- grants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ends"),
    [
        (lambda now: {"duration": "P1M"}, lambda now: parse_duration("P1M").after(now)),
        (lambda now: {"expires_at": iso(now + timedelta(days=400))}, lambda now: None),
        (lambda now: {}, lambda now: None),
    ],
)
async def test_grant_gives_a_promotional_entitlement(app, clock, body, ends) -> None:
    body = body(clock.now)  # dated from the injected clock
    assert (await customer(app, "u-1"))["entitlements"] == {}  # now cached in Redis
    status, got = await call(app, "POST", GRANTS.format("u-1"), json=body)
    assert status == 201
    premium = got["entitlements"]["premium"]
    expected_end = ends(clock.now)
    if "expires_at" in body:
        expected = body["expires_at"]
    else:
        expected = iso(expected_end) if expected_end else None
    assert premium == {
        "active": True,
        "status": "active",
        "period_type": "promotional",
        "will_renew": False,
        "expires_at": expected,
        "grace_period_expires_at": None,
        "product_id": None,
        "store": "promotional",
        "is_sandbox": False,
        "purchased_at": iso(clock.now),
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }
    assert (await customer(app, "u-1"))["entitlements"]["premium"] == premium


async def test_grant_runs_out_and_reads_expired(app, clock) -> None:
    await call(app, "POST", GRANTS.format("u-1"), json={"duration": "P7D"})
    clock.advance(days=7)
    premium = (await customer(app, "u-1"))["entitlements"]["premium"]
    assert (premium["active"], premium["status"]) == (False, "expired")


async def test_ending_grants_revokes_them_and_leaves_store_purchases(app, apple_ca, clock) -> None:
    user = str(uuid.uuid4())
    await call(app, "POST", GRANTS.format(user), json={})
    await call(app, "POST", "/v1/customers/other/entitlements/premium/grants", json={})
    assert (await customer(app, user))["entitlements"]["premium"]["active"] is True  # cached
    clock.advance(hours=1)
    status, got = await call(app, "DELETE", GRANTS.format(user))
    assert status == 200
    assert (await customer(app, user))["entitlements"]["premium"]["status"] == "revoked"
    premium = got["entitlements"]["premium"]
    assert (premium["active"], premium["status"], premium["revoked_at"]) == (
        False,
        "revoked",
        iso(clock.now),
    )
    assert (await customer(app, "other"))["entitlements"]["premium"]["active"] is True
    # With a store subscription too: ending grants does not touch it.
    await subscribe(app, apple_ca, clock, user)
    await call(app, "POST", GRANTS.format(user), json={})
    status, got = await call(app, "DELETE", GRANTS.format(user))
    assert got["entitlements"]["premium"]["store"] == "app_store"
    assert got["entitlements"]["premium"]["active"] is True
    assert [s["status"] for s in got["subscriptions"]] == ["active"]


async def test_a_grant_survives_the_end_of_a_store_purchase(app, apple_ca, clock) -> None:
    user = str(uuid.uuid4())
    s = await subscribe(app, apple_ca, clock, user)
    await call(app, "POST", GRANTS.format(user), json={"duration": "P1Y"})
    clock.advance(hours=1)
    assert (await app.post("/webhooks/apple", json=s.body("refund", clock.now))).status == 200
    clock.advance(hours=1)
    assert (await app.post("/webhooks/apple", json=s.body("expire", clock.now))).status == 200
    got = await customer(app, user)
    assert got["entitlements"]["premium"]["store"] == "promotional"
    assert got["entitlements"]["premium"]["active"] is True
    assert got["subscriptions"][0]["status"] == "revoked"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (GRANTS, lambda now: {"duration": "a month"}, 400, "invalid_request"),
        (GRANTS, lambda now: {"duration": "P0D"}, 400, "invalid_request"),
        (GRANTS, lambda now: {"expires_at": "tomorrow"}, 400, "invalid_request"),
        (
            GRANTS,
            lambda now: {"expires_at": naive(now + timedelta(days=30))},
            400,
            "invalid_request",
        ),
        (GRANTS, lambda now: {"duration": "P1M", "expires_at": iso(now + YEAR)}, 400, None),
        (GRANTS, lambda now: {"until": "forever"}, 400, "invalid_request"),
        (GRANTS, lambda now: {"expires_at": iso(now - YEAR)}, 422, "grant_rejected"),  # past
        ("/v1/customers/{}/entitlements/gold/grants", lambda now: {}, 404, "unknown_entitlement"),
        ("/v1/customers/{}/entitlements/premium/grants", lambda now: [], 400, "invalid_request"),
    ],
)
async def test_grant_refusals_change_nothing(
    app, database_url, clock, path, body, status, code
) -> None:
    got_status, got = await call(app, "POST", path.format("u-1"), json=body(clock.now))
    assert got_status == status
    if code:
        assert got["error"]["code"] == code
    assert await rows(database_url, "SELECT * FROM grants") == []
    assert await rows(database_url, "SELECT * FROM audit_log") == []


# --- who may act ----------------------------------------------------------------------------


OPERATOR_ROUTES = [
    ("POST", GRANTS, {}),
    ("DELETE", GRANTS, None),
    ("POST", "/v1/customers/{}/suspend", None),
    ("POST", "/v1/customers/{}/unsuspend", None),
    ("GET", "/v1/customers/{}/export", None),
    ("DELETE", "/v1/customers/{}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES)
async def test_operator_routes_need_admin(app, database_url, method, path, body) -> None:
    url = path.format("u-1")
    kw = {"json": body} if body is not None else {}
    assert (await call(app, method, url, None, **kw))[0] == 401
    for key in (READER_KEY, WRITER_KEY):
        status, got = await call(app, method, url, key, **kw)
        assert (status, got["error"]["code"]) == (403, "forbidden")
    status, got = await call(app, method, url, headers=user_token("u-1"), **kw)
    assert status == 403  # a user cannot grant, suspend, export or erase itself
    assert await rows(database_url, "SELECT * FROM audit_log") == []
    assert await rows(database_url, "SELECT * FROM customers") == []


# --- suspension -----------------------------------------------------------------------------


async def test_suspension_reads_inactive_keeps_recording_and_lifts(
    app, apple_ca, clock, database_url
) -> None:
    user = str(uuid.uuid4())
    s = await subscribe(app, apple_ca, clock, user)
    await call(app, "POST", GRANTS.format(user), json={})
    before = await customer(app, user)  # cached in Redis now
    status, got = await call(
        app, "POST", f"/v1/customers/{user}/suspend", json={"reason": "chargeback fraud"}
    )
    assert status == 200
    assert got["suspended"] is True
    assert got["entitlements"]["premium"]["active"] is False
    assert got["entitlements"]["premium"]["status"] == "active"  # support sees why
    assert got["subscriptions"] == before["subscriptions"]
    assert (await customer(app, user))["suspended"] is True  # the cache was invalidated
    # Store notifications keep being recorded while suspended.
    clock.advance(hours=1)
    assert (await app.post("/webhooks/apple", json=s.body("cancel", clock.now))).status == 200
    assert (await customer(app, user))["subscriptions"][0]["will_renew"] is False
    status, got = await call(app, "POST", f"/v1/customers/{user}/unsuspend")
    assert (status, got["suspended"]) == (200, False)
    assert got["entitlements"]["premium"]["active"] is True
    assert got["subscriptions"][0]["will_renew"] is False  # what the store says now
    audit = await rows(database_url, "SELECT actor, action, details FROM audit_log ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit] == [
        ("admin", "grant"),
        ("admin", "suspend"),
        ("admin", "unsuspend"),
    ]
    assert json.loads(audit[1]["details"]) == {"reason": "chargeback fraud"}
    events = await rows(
        database_url, "SELECT type FROM customer_events WHERE app_user_id = $1 ORDER BY id", user
    )
    # The cancel changed no entitlement (the lifetime grant is what shows): no event for it.
    assert [e["type"] for e in events] == ["purchased", "grant_added", "suspended", "unsuspended"]


async def test_suspending_a_customer_with_nothing_still_writes_an_event(app, database_url) -> None:
    status, got = await call(app, "POST", "/v1/customers/nobody/suspend")
    assert (status, got["suspended"], got["entitlements"]) == (200, True, {})
    events = await rows(database_url, "SELECT app_user_id, sequence, type FROM customer_events")
    assert [tuple(e) for e in events] == [("nobody", 1, "suspended")]


# --- aliases ------------------------------------------------------------------------------


async def test_alias_merge_moves_purchases_and_reads_answer_for_the_customer(
    app, apple_ca, clock, database_url
) -> None:
    anon = str(uuid.uuid4())
    await subscribe(app, apple_ca, clock, anon)
    await call(app, "POST", GRANTS.format(anon), json={"duration": "P1M"})
    assert (await customer(app, anon))["entitlements"]["premium"]["active"] is True
    status, got = await call(
        app,
        "POST",
        "/v1/customers/u-1/aliases",
        headers=user_token("u-1"),
        json={"alias": anon, "alias_token": user_token(anon)["Authorization"].split()[1]},
    )
    assert status == 200
    assert got["app_user_id"] == "u-1"
    assert len(got["subscriptions"]) == 1
    read_by_alias = await customer(app, anon)
    assert read_by_alias["app_user_id"] == "u-1"
    assert read_by_alias["subscriptions"] == got["subscriptions"]
    grants = await rows(database_url, "SELECT app_user_id FROM grants")
    assert [g["app_user_id"] for g in grants] == ["u-1"]
    events = await rows(database_url, "SELECT app_user_id, type FROM customer_events ORDER BY id")
    assert {(e["app_user_id"], e["type"]) for e in events[-2:]} == {
        ("u-1", "alias_merged"),
        (anon, "alias_merged"),
    }
    audit = await rows(database_url, "SELECT actor, action, app_user_id FROM audit_log")
    assert {tuple(a) for a in audit if a["action"] == "alias"} == {
        ("user:u-1", "alias", "u-1"),
        ("user:u-1", "alias", anon),
    }
    # A purchase the app submits under the alias now lands with the customer.
    s = scenario(apple_ca[0], user=anon)
    signed = jwt.decode(
        s.body("subscribe", clock.now)["signedPayload"], options={"verify_signature": False}
    )["data"]["signedTransactionInfo"]
    status, got = await call(
        app,
        "POST",
        "/v1/purchases",
        WRITER_KEY,
        json={"app_user_id": anon, "store": "app_store", "signed_transaction": signed},
    )
    assert (status, got["app_user_id"], len(got["subscriptions"])) == (200, "u-1", 2)
    assert await rows(database_url, "SELECT * FROM customers WHERE app_user_id = $1", anon) == []


@pytest.mark.parametrize(
    ("setup", "target", "alias", "key", "status", "code"),
    [
        ([], "u-1", "u-1", ADMIN_KEY, 400, "invalid_request"),
        ([], "u-1", "bad id", ADMIN_KEY, 400, "invalid_request"),
        ([("u-2", "anon-1")], "u-1", "anon-1", ADMIN_KEY, 409, "alias_conflict"),
        ([("u-2", "anon-1")], "anon-1", "anon-2", ADMIN_KEY, 409, "alias_conflict"),
        ([("u-2", "u-1")], "u-1", "u-2", ADMIN_KEY, 409, "alias_conflict"),  # a cycle
        ([], "u-1", "anon-1", READER_KEY, 403, "forbidden"),
        ([], "u-1", "anon-1", "user:u-2", 403, "forbidden"),
    ],
)
async def test_alias_refusals(app, database_url, setup, target, alias, key, status, code) -> None:
    for owner, existing in setup:
        got = await call(app, "POST", f"/v1/customers/{owner}/aliases", json={"alias": existing})
        assert got[0] == 200
    before = await rows(database_url, "SELECT * FROM customer_aliases ORDER BY alias")
    headers = user_token(key.removeprefix("user:")) if key.startswith("user:") else auth(key)
    got_status, got = await call(
        app, "POST", f"/v1/customers/{target}/aliases", headers=headers, json={"alias": alias}
    )
    assert (got_status, got["error"]["code"]) == (status, code)
    assert await rows(database_url, "SELECT * FROM customer_aliases ORDER BY alias") == before


async def test_alias_merge_is_idempotent(app) -> None:
    for _ in range(2):
        status, _got = await call(app, "POST", "/v1/customers/u-1/aliases", json={"alias": "a-1"})
        assert status == 200


async def test_a_transfer_by_submission_is_audited_for_both_customers(
    app, apple_ca, clock, database_url
) -> None:
    owner = str(uuid.uuid4())
    s = await subscribe(app, apple_ca, clock, owner)
    signed = jwt.decode(
        s.body("renew", clock.now)["signedPayload"], options={"verify_signature": False}
    )["data"]["signedTransactionInfo"]
    status, _got = await call(
        app,
        "POST",
        "/v1/purchases",
        headers=user_token("u-new"),
        json={"app_user_id": "u-new", "store": "app_store", "signed_transaction": signed},
    )
    assert status == 200
    audit = await rows(
        database_url, "SELECT actor, app_user_id, details FROM audit_log WHERE action = 'transfer'"
    )
    assert {(a["actor"], a["app_user_id"]) for a in audit} == {
        ("user:u-new", owner),
        ("user:u-new", "u-new"),
    }
    assert {json.loads(a["details"])["direction"] for a in audit} == {"in", "out"}
    events = await rows(
        database_url, "SELECT app_user_id FROM customer_events WHERE type = $1", "transferred"
    )
    assert {e["app_user_id"] for e in events} == {owner, "u-new"}


# --- GDPR -----------------------------------------------------------------------------------


async def test_export_holds_everything_stored_about_the_customer(
    app, apple_ca, clock, database_url
) -> None:
    user = str(uuid.uuid4())
    await subscribe(app, apple_ca, clock, user)
    await call(app, "POST", GRANTS.format(user), json={"duration": "P1M", "reason": "outage"})
    await call(app, "POST", f"/v1/customers/{user}/aliases", json={"alias": "old@example.com"})
    status, doc = await call(app, "GET", f"/v1/customers/{user}/export")
    assert status == 200
    assert doc["app_user_id"] == user
    assert doc["exported_at"] == iso(clock.now)
    assert doc["customer"]["app_user_id"] == user
    assert [a["alias"] for a in doc["aliases"]] == ["old@example.com"]
    [purchase] = doc["purchases"]
    assert purchase["store"] == "app_store"
    assert purchase["state"]["transactions"]  # the full folded state
    assert [g["entitlement"] for g in doc["grants"]] == ["premium"]
    assert {e["type"] for e in doc["events"]} >= {"purchased", "grant_added", "alias_merged"}
    assert [a["action"] for a in doc["audit"]] == ["grant", "alias", "alias", "export"]
    assert [(o["store"], o["purchase_id"]) for o in doc["ownership"]] == [
        (purchase["store"], purchase["purchase_id"])
    ]
    [note] = doc["notifications"]
    assert note["notification_type"] == "SUBSCRIBED"
    assert "signedPayload" in note["payload"]
    audit = await rows(database_url, "SELECT action FROM audit_log ORDER BY id")
    assert audit[-1]["action"] == "export"


async def text_cells(database_url: str) -> list[tuple[str, str, str]]:
    """Every value of every text-like column of every table, as (table, column, text)."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND data_type IN ('text', 'jsonb', 'json', 'character varying', 'uuid')"""
        )
        cells = []
        for c in columns:
            table, column = c["table_name"], c["column_name"]
            values = await conn.fetch(f'SELECT "{column}"::text AS v FROM "{table}"')
            cells += [(table, column, v["v"]) for v in values if v["v"] is not None]
        return cells
    finally:
        await conn.close()


async def test_erasure_leaves_no_trace_of_the_person(app, apple_ca, clock, database_url) -> None:
    user = str(uuid.uuid4())  # also the appAccountToken inside Apple's signed payloads
    email = f"{user[:8]}@example.com"
    s = await subscribe(app, apple_ca, clock, user)
    clock.advance(hours=1)
    await app.post("/webhooks/apple", json=s.body("cancel", clock.now))
    await call(app, "POST", GRANTS.format(user), json={"reason": f"asked by {email}"})
    await call(
        app,
        "POST",
        f"/v1/customers/{user}/aliases",
        headers=user_token(user),
        json={"alias": email, "alias_token": user_token(email)["Authorization"].split()[1]},
    )
    await call(app, "POST", f"/v1/customers/{user}/suspend", json={})
    await call(app, "GET", f"/v1/customers/{user}/export")
    assert any(user in text for _t, _c, text in await text_cells(database_url))
    for cached in (user, email):  # both reads now sit in Redis
        assert (await customer(app, cached))["app_user_id"] == user

    status, got = await call(app, "DELETE", f"/v1/customers/{email}")  # via the alias
    assert (status, got) == (200, {"erased": True})
    leaks = [
        (table, column)
        for table, column, text in await text_cells(database_url)
        if user in text or email in text
    ]
    assert leaks == []
    for erased in (user, email):
        got = await customer(app, erased)
        assert (got["app_user_id"], got["entitlements"], got["subscriptions"]) == (erased, {}, [])
    # What accounting keeps stays, under a pseudonym.
    [purchase] = await rows(database_url, "SELECT app_user_id, status FROM purchases")
    assert purchase["app_user_id"].startswith("erased:")
    notes = await rows(database_url, "SELECT payload FROM store_notifications")
    assert notes
    assert all(n["payload"] is None for n in notes)
    assert await rows(database_url, "SELECT * FROM grants") == []
    assert await rows(database_url, "SELECT * FROM customer_aliases") == []
    pseudonym = purchase["app_user_id"]
    erased_events = await rows(
        database_url, "SELECT type FROM customer_events WHERE app_user_id = $1", pseudonym
    )
    assert erased_events[-1]["type"] == "erased"
    # Idempotent.
    assert await call(app, "DELETE", f"/v1/customers/{user}") == (200, {"erased": True})

    # A later store notification for the erased purchase does not re-create the person...
    clock.advance(hours=1)
    assert (await app.post("/webhooks/apple", json=s.body("uncancel", clock.now))).status == 200
    assert (await customer(app, user))["subscriptions"] == []
    [purchase] = await rows(database_url, "SELECT app_user_id, will_renew FROM purchases")
    assert (purchase["app_user_id"], purchase["will_renew"]) == (pseudonym, True)
    # ...until a user submits the purchase again (whatever the transfer policy).
    signed = jwt.decode(
        s.body("renew", clock.now)["signedPayload"], options={"verify_signature": False}
    )["data"]["signedTransactionInfo"]
    status, got = await call(
        app,
        "POST",
        "/v1/purchases",
        WRITER_KEY,
        json={"app_user_id": "u-back", "store": "app_store", "signed_transaction": signed},
    )
    assert (status, len(got["subscriptions"])) == (200, 1)


async def test_erasing_an_unknown_customer_is_harmless(app, database_url) -> None:
    assert await call(app, "DELETE", "/v1/customers/never-seen") == (200, {"erased": True})
    assert all("never-seen" not in text for _t, _c, text in await text_cells(database_url))


async def test_keep_policy_still_lets_an_erased_purchase_be_claimed(
    make_client, config, apple_ca, clock, database_url
) -> None:
    config["customers"] = {"transfer_policy": "keep"}
    app = await make_client(apple_config(config, apple_ca[1]))
    user = str(uuid.uuid4())
    s = await subscribe(app, apple_ca, clock, user)
    signed = jwt.decode(
        s.body("renew", clock.now + timedelta(minutes=1))["signedPayload"],
        options={"verify_signature": False},
    )["data"]["signedTransactionInfo"]
    body = {"app_user_id": "u-other", "store": "app_store", "signed_transaction": signed}
    assert (await call(app, "POST", "/v1/purchases", WRITER_KEY, json=body))[0] == 409
    await call(app, "DELETE", f"/v1/customers/{user}")
    assert (await call(app, "POST", "/v1/purchases", WRITER_KEY, json=body))[0] == 200
