"""What each operator action leaves behind (services/operations.py, api/customers.py), over
HTTP with real PostgreSQL and Redis: its audit row (who, which request, on whom, the details
and the reason given), its log line, the refusals' messages, and the alias's purchases linked
at the time of the merge. Written against the mutants the mutation run found alive
(`make mutation-integration`)."""

from __future__ import annotations

import json
from typing import Any

from structlog.testing import capture_logs

from api.reads import SERVICE
from entitlements.duration import parse_duration
from tests.conftest import ADMIN_KEY, auth, user_token
from tests.e2e.replay_helpers import query
from tests.factories import subscription_event

PREMIUM = "/v1/customers/{}/entitlements/premium/grants"


def iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def call(
    client, method: str, path: str, json_body: Any = None, request_id: str = "req"
) -> tuple[int, Any]:
    headers = auth(ADMIN_KEY) | {"X-Request-ID": request_id}
    resp = await client.request(method, path, headers=headers, json=json_body)
    return resp.status, await resp.json()


async def rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await query(database_url, sql, *args)]


async def audit(database_url: str) -> list[tuple[Any, ...]]:
    found = await rows(
        database_url,
        "SELECT actor, action, app_user_id, request_id, details FROM audit_log ORDER BY id",
    )
    return [(*row[:4], json.loads(row[4])) for row in found]


def lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator actions' log lines, without the level."""
    return [
        {k: v for k, v in e.items() if k != "log_level"}
        for e in logs
        if str(e["event"]).startswith("customer_")
    ]


async def test_each_action_is_audited_with_its_request_details_reason_and_log_line(
    client, clock, database_url
) -> None:
    month_on = iso(parse_duration("P1M").after(clock.now))
    steps = [
        ("POST", PREMIUM, {"duration": "P1M", "reason": "goodwill"}, "r-grant", 201),
        ("DELETE", PREMIUM, {"reason": "granted by mistake"}, "r-end", 200),
        ("POST", "/v1/customers/{}/suspend", {"reason": "chargeback"}, "r-suspend", 200),
        ("POST", "/v1/customers/{}/unsuspend", {"reason": "cleared"}, "r-unsuspend", 200),
        ("POST", "/v1/customers/{}/aliases", {"alias": "anon-1"}, "r-alias", 200),
        ("GET", "/v1/customers/{}/export", None, "r-export", 200),
    ]
    with capture_logs() as logs:
        for method, path, body, request_id, status in steps:
            got = await call(client, method, path.format("u-1"), body, request_id)
            assert got[0] == status, (path, got)
    assert await audit(database_url) == [
        ("admin", "grant", "u-1", "r-grant", {"entitlement": "premium", "expires_at": month_on}
         | {"reason": "goodwill"}),
        ("admin", "end_grants", "u-1", "r-end", {"entitlement": "premium", "ended": 1}
         | {"reason": "granted by mistake"}),
        ("admin", "suspend", "u-1", "r-suspend", {"reason": "chargeback"}),
        ("admin", "unsuspend", "u-1", "r-unsuspend", {"reason": "cleared"}),
        ("admin", "alias", "u-1", "r-alias", {"role": "target"}),
        ("admin", "alias", "anon-1", "r-alias", {"role": "alias"}),
        ("admin", "export", "u-1", "r-export", {}),
    ]  # fmt: skip
    assert lines(logs) == [
        {"event": f"customer_{action}", "app_user_id": "u-1", "actor": "admin"}
        for action in ("grant", "end_grants", "suspend", "unsuspend", "alias")
    ]

    with capture_logs() as logs:
        assert await call(client, "DELETE", "/v1/customers/anon-1", None, "r-erase") == (
            200,
            {"erased": True},
        )  # through the alias
    [erase] = [row for row in await audit(database_url) if row[1] == "erase"]
    assert erase[0::3] == ("admin", "r-erase")
    assert erase[2].startswith("erased:")
    assert lines(logs) == [{"event": "customer_erased", "actor": "admin"}]  # no id: it is gone


async def test_export_through_an_alias_is_the_customers_and_audited_on_it(
    client, database_url
) -> None:
    assert (await call(client, "POST", PREMIUM.format("u-1"), {}))[0] == 201
    assert (await call(client, "POST", "/v1/customers/u-1/aliases", {"alias": "anon-1"}))[0] == 200
    status, doc = await call(client, "GET", "/v1/customers/anon-1/export", None, "r-export")
    assert (status, doc["app_user_id"]) == (200, "u-1")
    assert [g["entitlement"] for g in doc["grants"]] == ["premium"]
    assert [a["alias"] for a in doc["aliases"]] == ["anon-1"]
    assert (await audit(database_url))[-1] == ("admin", "export", "u-1", "r-export", {})


async def test_alias_refusals_say_why(client) -> None:
    status, body = await call(client, "POST", "/v1/customers/u-1/aliases", {"alias": "u-1"})
    assert (status, body["error"]["message"]) == (400, "a customer cannot be its own alias")
    assert (await call(client, "POST", "/v1/customers/u-2/aliases", {"alias": "anon-1"}))[0] == 200
    status, body = await call(client, "POST", "/v1/customers/u-1/aliases", {"alias": "anon-1"})
    assert (status, body["error"]["message"]) == (409, "this alias belongs to another customer")
    status, body = await call(client, "POST", "/v1/customers/anon-1/aliases", {"alias": "anon-2"})
    assert (status, body["error"]["message"]) == (409, "'anon-1' is itself an alias of a customer")


async def test_the_aliases_purchases_are_linked_to_the_customer_when_merged(
    client, clock, database_url
) -> None:
    await client.app[SERVICE].ingest(
        None, [subscription_event(purchased_at=clock.now)], submitted_by="anon-1"
    )
    clock.advance(hours=5)
    assert (await call(client, "POST", "/v1/customers/u-1/aliases", {"alias": "anon-1"}))[0] == 200
    assert await rows(database_url, "SELECT app_user_id, linked_at FROM purchases") == [
        ("u-1", clock.now)
    ]


async def test_a_users_merge_without_proof_of_the_alias_says_what_is_missing(client) -> None:
    required = "alias_token is required: a user token whose subject is the alias"
    cases = [
        ({"alias": "anon-1"}, required),
        ({"alias": "anon-1", "alias_token": ""}, required),
        (
            {"alias": "anon-1", "alias_token": "not-a-token"},
            "alias_token is not a valid user token",
        ),
        (
            {"alias": "anon-1", "alias_token": user_token("anon-2")},
            "alias_token is a user token for another id than the alias",
        ),
    ]
    for body, message in cases:
        resp = await client.post(
            "/v1/customers/u-1/aliases", json=body, headers=auth(user_token("u-1"))
        )
        got = await resp.json()
        assert (resp.status, got["error"]["code"], got["error"]["message"]) == (
            403,
            "forbidden",
            message,
        ), body


async def test_an_unknown_entitlement_is_named(client) -> None:
    status, body = await call(client, "POST", "/v1/customers/u-1/entitlements/gold/grants", {})
    assert (status, body["error"]["message"]) == (404, "no entitlement named 'gold' is configured")
