"""`receiptd replay` end to end: realistic traffic of both stores through the real routes, then
the journal re-derived with the production code path and compared with what is stored."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import asyncpg

from entitlements.replay import Difference
from server.bootstrap import cache_for_fixes
from services.retention import prune
from storage import replay as replay_db
from storage.replay import Selection
from tests.conftest import ADMIN_KEY, auth
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import scenario
from tests.e2e.google_helpers import USER, customer, iso, notify
from tests.e2e.replay_helpers import (
    apple_notify,
    apple_traffic,
    apple_tx,
    google_traffic,
    query,
    replay,
    submit,
)

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores


async def test_an_intact_database_replays_with_nothing_to_report(stores) -> None:
    await apple_traffic(stores)
    await google_traffic(stores)

    summary, reported = await replay(stores)

    assert [
        (f.purchase_id, outcome, f.differences, f.not_rederivable) for f, outcome in reported
    ] == []
    purchases = await query(stores.database_url, "SELECT count(*) AS n FROM purchases")
    assert summary.checked == purchases[0]["n"] >= 12
    assert (summary.differing, summary.not_rederivable, summary.fixed) == (0, 0, 0)
    journal = await query(
        stores.database_url,
        "SELECT notification_type, reads FROM store_notifications ORDER BY id",
    )
    assert summary.entries == len(journal)
    assert sum(1 for j in journal if j["notification_type"] == "SUBMISSION") == 5
    # The traffic did take the paths that make replay hard: every one was recorded.
    reads = [r for j in journal for r in json.loads(j["reads"])["reads"]]
    asked = Counter((r["call"], r.get("failure")) for r in reads)
    assert asked[("apple.get", "not_in_environment")] >= 1  # Production first, then Sandbox
    pages = [r for r in reads if "revision" in r["request"].get("query", {})]
    assert len(pages) == 3  # the second history page, once per submission with the API
    assert asked[("play.subscriptionsv2.get", "store_unavailable")] == 1  # the outage
    assert asked[("play.subscriptionsv2.get", "purchase_not_found")] == 1  # then products.get
    assert asked[("play.products.get", None)] == 2


async def subscribe_apple(stores, user: str | None = None) -> str:
    user = user or str(uuid.uuid4())
    lifecycle = scenario(stores.ca, user=user)
    await apple_notify(stores, lifecycle.body("subscribe", stores.clock.now))
    stores.clock.advance(hours=1)
    await apple_notify(stores, lifecycle.body("renew", stores.clock.now))
    return user


async def subscribe_google(stores, token: str = "tok-a") -> None:
    s = stores
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", token)


def outcomes(reported) -> dict[str | None, tuple[str, list[str], str | None]]:
    """owner → (outcome, differing fields, why not re-derivable)."""
    return {
        f.owner: (outcome, [d.field for d in f.differences], f.not_rederivable)
        for f, outcome in reported
    }


async def test_damage_behind_the_services_back_is_reported_then_fixed(stores, redis_client) -> None:
    apple_user = await subscribe_apple(stores)
    await subscribe_google(stores)
    url = stores.database_url
    await query(
        url,
        "UPDATE purchases SET status = 'expired', expires_at = expires_at - interval '3 days'"
        " WHERE store = 'app_store'",
    )
    await query(
        url,
        "UPDATE purchases SET state = jsonb_set(state, '{store_status}', '\"revoked\"')"
        " WHERE purchase_id = 'tok-a'",
    )

    summary, reported = await replay(stores)

    assert (summary.checked, summary.differing, summary.fixed) == (2, 2, 0)
    assert outcomes(reported) == {
        apple_user: ("differs", ["status", "expires_at"], None),
        USER: ("differs", ["state.store_status"], None),
    }
    [(apple, _)] = [(f, o) for f, o in reported if f.owner == apple_user]
    assert apple.differences[0] == Difference("status", "expired", "active")

    # The damaged record is what a reader now has in the cache; the fix must replace it.
    await redis_client.flushdb()
    premium = (await customer(stores.client, apple_user))["entitlements"]["premium"]
    assert premium["status"] == "expired"
    async with cache_for_fixes(stores.settings) as (cache, note):
        summary, reported = await replay(stores, fix=True, cache=cache)
    assert note == "invalidated for the customers fixed"
    assert (summary.differing, summary.fixed, summary.invalidated) == (2, 2, 2)
    assert {o for _f, o in reported} == {"fixed"}
    premium = (await customer(stores.client, apple_user))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("active", True)
    corrected = await query(
        url, "SELECT app_user_id FROM customer_events WHERE type = 'corrected' ORDER BY id"
    )
    assert sorted(r["app_user_id"] for r in corrected) == sorted([apple_user, USER])
    audit = await query(url, "SELECT actor, app_user_id, details FROM audit_log")
    assert {(a["actor"], a["app_user_id"]) for a in audit} == {
        ("receiptd replay", apple_user),
        ("receiptd replay", USER),
    }
    assert all("tok-a" not in a["details"] for a in audit)  # a one-way ref, not the token

    summary, reported = await replay(stores)
    assert (reported, summary.differing) == ([], 0)


async def test_pruned_payloads_are_not_rederivable_never_guessed_an_erasure_keeps_the_state(
    stores,
) -> None:
    old_user = await subscribe_apple(stores)
    stores.clock.advance(days=100)
    await subscribe_google(stores)
    erased_user = await subscribe_apple(stores)
    pool = await asyncpg.create_pool(stores.database_url, min_size=1, max_size=2)
    try:
        assert await prune(pool, stores.clock.now, 90) == 2  # the old user's two entries
    finally:
        await pool.close()
    resp = await stores.client.delete(f"/v1/customers/{erased_user}", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    # Damage that replay cannot prove is damage: reported as not re-derivable, not fixed.
    await query(stores.database_url, "UPDATE purchases SET status = 'revoked'")

    summary, reported = await replay(stores, fix=True)

    found = outcomes(reported)
    assert found[old_user] == (
        "not re-derivable",
        [],
        f"payload pruned {iso(stores.clock.now)} (journal entry 1) and 1 more",
    )
    # The erasure dropped its entries' payloads but journaled the state they gave (ERASURE):
    # replay starts the purchase from there.
    [(pseudonym, why)] = [(k, v) for k, v in found.items() if k and k.startswith("erased:")]
    assert why == ("fixed", ["status"], None)
    assert found[USER] == ("fixed", ["status"], None)
    assert (summary.checked, summary.not_rederivable, summary.differing) == (3, 1, 2)
    statuses = await query(
        stores.database_url, "SELECT status, app_user_id FROM purchases ORDER BY id"
    )
    assert [(r["status"], r["app_user_id"]) for r in statuses] == [
        ("revoked", old_user),
        ("active", USER),
        ("active", pseudonym),
    ]


async def test_since_and_customer_select_what_is_replayed(stores) -> None:
    early = await subscribe_apple(stores)
    stores.clock.advance(days=2)
    middle = stores.clock.now
    stores.clock.advance(days=1)
    await subscribe_google(stores)
    late = await subscribe_apple(stores)
    resp = await stores.client.post(
        f"/v1/customers/{USER}/aliases", json={"alias": "anon-1"}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 200

    async def checked(**selection) -> int:
        summary, reported = await replay(stores, Selection(**selection))
        assert reported == []
        return summary.checked

    assert await checked() == 3
    assert await checked(since=middle) == 2
    assert await checked(customer=USER) == 1
    assert await checked(customer="anon-1") == 1  # an alias stands for its customer
    assert await checked(customer=early, since=middle) == 0
    assert await checked(customer=late, since=middle) == 1
    # A purchase selected by a recent entry is replayed from all of its entries.
    stores.clock.advance(days=1)
    recent = stores.clock.now
    await subscribe_apple(stores, early)
    assert await checked(since=recent) == 1


async def test_a_submission_is_journaled_without_its_submitter_and_erased_with_them(
    stores,
) -> None:
    s = stores
    for signed in (apple_tx(s, "8000", "8000", 23), apple_tx(s, "8001", "8001", 23)):
        s.fake_api.add_transaction(signed)
    await submit(s, {"app_user_id": "u-sub", "store": "app_store", "transaction_id": "8000"})
    [row] = await query(s.database_url, "SELECT * FROM store_notifications")
    assert (row["notification_type"], row["purchase_id"]) == ("SUBMISSION", "8000")
    assert row["purchase_ids"] == ["8000", "8001"]  # the account's history linked both
    assert json.loads(row["payload"]) == {"store": "app_store", "transaction_id": "8000"}
    calls = [r["call"] for r in json.loads(row["reads"])["reads"]]
    assert calls == ["apple.get"] * 3  # the transaction, its statuses, the history
    # The submitter is recorded apart, per purchase: erasure and merges reach it there.
    owners = await query(
        s.database_url,
        "SELECT purchase_id, app_user_id, notification_id FROM purchase_owners ORDER BY id",
    )
    assert [tuple(r) for r in owners] == [
        ("8000", "u-sub", row["id"]),
        ("8001", "u-sub", row["id"]),
    ]

    resp = await s.client.get("/v1/customers/u-sub/export", headers=auth(ADMIN_KEY))
    [note] = (await resp.json())["notifications"]
    assert note["reads"]["reads"][0]["request"]["path"] == "/inApps/v1/transactions/8000"

    resp = await s.client.delete("/v1/customers/u-sub", headers=auth(ADMIN_KEY))
    assert resp.status == 200
    rows = await query(
        s.database_url,
        "SELECT notification_type, purchase_ids, payload, reads, checkpoint IS NOT NULL AS kept"
        " FROM store_notifications ORDER BY id",
    )
    assert [tuple(r) for r in rows] == [
        ("SUBMISSION", ["8000", "8001"], None, None, False),
        ("ERASURE", ["8000"], None, None, True),  # the state each purchase had, for replay
        ("ERASURE", ["8001"], None, None, True),
    ]
    owners = await query(s.database_url, "SELECT DISTINCT app_user_id FROM purchase_owners")
    assert [r["app_user_id"][: len("erased:")] for r in owners] == ["erased:"]


# The statements as they were before they were rewritten for their plans (issue 24): the
# rewritten ones must read exactly what these read.
_ENTRIES_BY_OVERLAP = """
SELECT id, store, message_id, notification_type, result, payload, reads, purchase_ids,
       received_at, payload_pruned_at, checkpoint
FROM store_notifications
WHERE store = $1 AND purchase_ids && $2::text[]
ORDER BY id
"""
# The page joined the owner record to every row after $3 before it was limited.
_PAGE_JOINED_FIRST = replay_db._joined(
    "\nSELECT ",
    replay_db._PAGE_COLUMNS,
    replay_db._SELECTED,
    "  AND k.id > $3 AND k.id % $5 = $6\nORDER BY k.id\nLIMIT $4\n",
)


async def test_pages_and_their_entries_read_what_the_former_statements_read(stores) -> None:
    await apple_traffic(stores)
    await google_traffic(stores)
    conn = await asyncpg.connect(stores.database_url)
    try:
        rows = await conn.fetch("SELECT store, purchase_id FROM purchases ORDER BY id")
        named = await conn.fetch(
            "SELECT DISTINCT store, unnest(purchase_ids) AS id FROM store_notifications"
        )
        assert len(rows) >= 12
        assert any(len(r["purchase_ids"]) > 1 for r in await conn.fetch(
            "SELECT purchase_ids FROM store_notifications"
        ))  # fmt: skip
        for store in ("app_store", "play_store"):
            ids = [r["id"] for r in named if r["store"] == store]
            for asked in (ids, ids[:1], ids[1::2], ids + ids[:2], ["no such purchase"], []):
                new = await conn.fetch(replay_db.SELECT_ENTRIES, store, asked)
                old = await conn.fetch(_ENTRIES_BY_OVERLAP, store, asked)
                assert [dict(r) for r in new] == [dict(r) for r in old]
        customer = await conn.fetchval(
            "SELECT app_user_id FROM purchases WHERE app_user_id IS NOT NULL LIMIT 1"
        )
        since = await conn.fetchval("SELECT min(received_at) FROM store_notifications")
        read = 0
        for selection in ((None, None), (customer, None), (None, since), (customer, since)):
            for after, limit, of, index in (
                (0, 5, 1, 0),
                (3, 4, 1, 0),
                (0, 3, 2, 1),
                (0, 100, 3, 2),
            ):
                args = (*selection, after, limit, of, index)
                new = await conn.fetch(replay_db.SELECT_PAGE, *args)
                old = await conn.fetch(_PAGE_JOINED_FIRST, *args)
                assert [dict(r) for r in new] == [dict(r) for r in old], args
                read += len(new)
        assert read > 0
    finally:
        await conn.close()
