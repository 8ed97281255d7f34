"""Operator actions through aliases and on erased customers, over HTTP with real PostgreSQL and
Redis (services/operations.py): an action on an alias acts on its customer, every action
invalidates the cached reads made through the customer's aliases, and an erased customer's
pseudonym can take part in no merge. Each test kills a one-line change that the rest of the
suite let through (issue 18, "Tests that do not bite outside the core")."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from api.reads import SERVICE
from tests.conftest import ADMIN_KEY, READER_KEY, auth
from tests.e2e.replay_helpers import query
from tests.factories import subscription_event

PREMIUM = "/v1/customers/{}/entitlements/premium/grants"


async def call(client, method: str, path: str, json: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, headers=auth(ADMIN_KEY), json=json)
    return resp.status, await resp.json()


async def read(client, user: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert resp.status == 200
    return await resp.json()


async def merge(client, customer: str, alias: str) -> None:
    status, body = await call(client, "POST", f"/v1/customers/{customer}/aliases", {"alias": alias})
    assert (status, body["app_user_id"]) == (200, customer)


async def rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await query(database_url, sql, *args)]


async def test_an_action_on_an_alias_acts_on_its_customer(client, database_url) -> None:
    await merge(client, "u-1", "anon-1")
    status, body = await call(client, "POST", PREMIUM.format("anon-1"), {})
    assert (status, body["app_user_id"]) == (201, "u-1")
    assert body["entitlements"]["premium"]["active"] is True
    assert (await read(client, "u-1"))["entitlements"]["premium"]["active"] is True
    assert await rows(database_url, "SELECT app_user_id FROM grants") == [("u-1",)]

    status, body = await call(client, "POST", "/v1/customers/anon-1/suspend", {})
    assert (status, body["app_user_id"], body["suspended"]) == (200, "u-1", True)
    assert (await read(client, "u-1"))["suspended"] is True
    status, body = await call(client, "POST", "/v1/customers/anon-1/unsuspend", {})
    assert (status, body["suspended"]) == (200, False)
    assert (await read(client, "u-1"))["suspended"] is False
    status, body = await call(client, "DELETE", PREMIUM.format("anon-1"), {})
    assert (status, body["entitlements"]["premium"]["status"]) == (200, "revoked")
    assert (await read(client, "u-1"))["entitlements"]["premium"]["status"] == "revoked"

    # Nothing was written under the retired alias: no customer row, no audit row, no event.
    assert await rows(database_url, "SELECT 1 FROM customers WHERE app_user_id = 'anon-1'") == []
    audited = await rows(database_url, "SELECT app_user_id, action FROM audit_log ORDER BY id")
    assert audited == [
        ("u-1", "alias"),
        ("anon-1", "alias"),  # the merge itself names the alias
        ("u-1", "grant"),
        ("u-1", "suspend"),
        ("u-1", "unsuspend"),
        ("u-1", "end_grants"),
    ]
    events = await rows(
        database_url, "SELECT app_user_id, type FROM customer_events WHERE type <> 'alias_merged'"
    )
    assert {user for user, _ in events} == {"u-1"}


async def test_an_action_on_the_customer_invalidates_reads_through_its_aliases(client) -> None:
    await merge(client, "u-1", "anon-1")
    await merge(client, "u-1", "anon-2")
    for user in ("anon-1", "anon-2"):  # both reads now cached
        got = await read(client, user)
        assert (got["app_user_id"], got["suspended"], got["entitlements"]) == ("u-1", False, {})

    assert (await call(client, "POST", PREMIUM.format("u-1"), {}))[0] == 201
    for user in ("anon-1", "anon-2"):
        assert (await read(client, user))["entitlements"]["premium"]["active"] is True
    assert (await call(client, "POST", "/v1/customers/u-1/suspend", {}))[0] == 200
    for user in ("anon-1", "anon-2"):
        got = await read(client, user)
        assert (got["suspended"], got["entitlements"]["premium"]["active"]) == (True, False)
    assert (await call(client, "POST", "/v1/customers/u-1/unsuspend", {}))[0] == 200
    for user in ("anon-1", "anon-2"):
        got = await read(client, user)
        assert (got["suspended"], got["entitlements"]["premium"]["active"]) == (False, True)
    assert (await call(client, "DELETE", PREMIUM.format("u-1"), {}))[0] == 200
    for user in ("anon-1", "anon-2"):
        assert (await read(client, user))["entitlements"]["premium"]["status"] == "revoked"
    # Acting through one alias reaches the reads cached through the other.
    assert (await call(client, "POST", "/v1/customers/anon-1/suspend", {}))[0] == 200
    assert (await read(client, "anon-2"))["suspended"] is True


async def test_an_erased_customer_takes_part_in_no_merge(client, clock, database_url) -> None:
    await client.app[SERVICE].ingest(
        None, [subscription_event(purchased_at=clock.now)], submitted_by="u-gone"
    )
    assert (await read(client, "u-gone"))["entitlements"]["premium"]["active"] is True
    assert (await call(client, "DELETE", "/v1/customers/u-gone"))[0] == 200
    [(pseudonym,)] = await rows(
        database_url, "SELECT app_user_id FROM customers WHERE erased_at IS NOT NULL"
    )
    assert pseudonym.startswith("erased:")

    for customer, alias in (("u-1", pseudonym), (pseudonym, "u-2")):
        status, body = await call(
            client, "POST", f"/v1/customers/{customer}/aliases", {"alias": alias}
        )
        assert (status, body["error"]["code"]) == (409, "alias_conflict"), (customer, alias)
        assert body["error"]["message"] == "an erased customer cannot take part in a merge"
    # The pseudonym keeps its purchase; nobody gained it or any alias.
    assert await rows(database_url, "SELECT app_user_id FROM purchases") == [(pseudonym,)]
    assert await rows(database_url, "SELECT * FROM customer_aliases") == []
    assert (await read(client, "u-1"))["subscriptions"] == []
    assert await rows(database_url, "SELECT 1 FROM audit_log WHERE action = 'alias'") == []


async def test_an_erasure_locks_purchases_before_the_customer_as_ingest_does(
    client, clock, database_url
) -> None:
    """An ingest locks the purchase, then its customer. An erasure that took the customer
    first would deadlock with it (PostgreSQL would abort one of them)."""
    await client.app[SERVICE].ingest(
        None, [subscription_event(purchased_at=clock.now)], submitted_by="u-1"
    )
    ingest = await asyncpg.connect(database_url)
    try:
        await ingest.execute("SET deadlock_timeout = '20ms'")  # the victim of any deadlock
        async with ingest.transaction():
            await ingest.fetch("SELECT id FROM purchases WHERE purchase_id = 'otx-1' FOR UPDATE")
            erase = asyncio.create_task(call(client, "DELETE", "/v1/customers/u-1"))
            await waiting_on_a_lock(ingest, erase)
            await ingest.fetch("SELECT 1 FROM customers WHERE app_user_id = 'u-1' FOR UPDATE")
        assert (await erase)[0] == 200
    finally:
        await ingest.close()
    [(owner,)] = await rows(database_url, "SELECT app_user_id FROM purchases")
    assert owner.startswith("erased:")


async def waiting_on_a_lock(conn: asyncpg.Connection, task: asyncio.Task[Any]) -> None:
    """Until another session of this database waits on a lock (the task got that far)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ):
        assert not task.done(), task.result()
        assert asyncio.get_running_loop().time() < deadline, "nothing waits on a lock"
        await asyncio.sleep(0.01)


async def test_an_action_locks_its_customer_before_it_writes(client, database_url) -> None:
    """An operator action takes its customer's row lock first: while another transaction holds
    the row (even a key-share lock, as a grant's foreign key takes), the action waits for it
    instead of writing alongside it."""
    assert (await call(client, "POST", PREMIUM.format("u-1"), {}))[0] == 201
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.fetch("SELECT 1 FROM customers WHERE app_user_id = 'u-1' FOR KEY SHARE")
            grant = asyncio.create_task(call(client, "POST", PREMIUM.format("u-1"), {}))
            await waiting_on_a_lock(other, grant)  # it waits rather than finishing
        assert (await grant)[0] == 201
    finally:
        await other.close()
    assert await rows(database_url, "SELECT count(*) FROM grants") == [(2,)]


async def test_a_merge_locks_the_aliases_purchases_first(client, clock, database_url) -> None:
    """Like an ingest, a merge takes the alias's purchases' row locks before anything else:
    it waits for a transaction holding one of them (even a key-share lock)."""
    await client.app[SERVICE].ingest(
        None, [subscription_event(purchased_at=clock.now)], submitted_by="anon-1"
    )
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.fetch("SELECT 1 FROM purchases WHERE purchase_id = 'otx-1' FOR KEY SHARE")
            path = "/v1/customers/u-1/aliases"
            merge = asyncio.create_task(call(client, "POST", path, {"alias": "anon-1"}))
            await waiting_on_a_lock(other, merge)  # it waits rather than finishing
        assert (await merge)[0] == 200
    finally:
        await other.close()
    assert await rows(database_url, "SELECT app_user_id FROM purchases") == [("u-1",)]
