"""Alias takeover (issue 18, attack 1): a signed-in user must not merge another customer into
its own account. An alias needs proof: an admin key, or the alias's own user token as
`alias_token` (contract §3 "Operators and internal services"). Over HTTP against the real
app, PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth, user_token

GRANTS = "/v1/customers/{}/entitlements/premium/grants"


async def call(client, method: str, path: str, headers: dict[str, str], **kw) -> tuple[int, Any]:
    resp = await client.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def read(client, user: str) -> dict[str, Any]:
    status, body = await call(client, "GET", f"/v1/customers/{user}", auth(READER_KEY))
    assert status == 200
    return body


async def aliases_table(client) -> list[tuple[str, str]]:
    from api.keys import POOL

    async with client.app[POOL].acquire() as conn:
        rows = await conn.fetch("SELECT alias, app_user_id FROM customer_aliases ORDER BY alias")
    return [(r["alias"], r["app_user_id"]) for r in rows]


def without_as_of(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "as_of"}


@pytest.fixture
async def victim(client) -> dict[str, Any]:
    status, _ = await call(
        client, "POST", GRANTS.format("victim"), auth(ADMIN_KEY), json={"duration": "P1M"}
    )
    assert status == 201
    return await read(client, "victim")


@pytest.mark.parametrize(
    "body",
    [
        {"alias": "victim"},  # no proof at all
        {"alias": "victim", "alias_token": user_token("attacker")},  # the caller's own token
        {"alias": "victim", "alias_token": user_token("someone-else")},  # another id's token
        {"alias": "victim", "alias_token": "not-a-token"},
        {"alias": "victim", "alias_token": user_token("victim", secret="x" * 40)},  # forged
        {"alias": "victim", "alias_token": user_token("victim", exp_in=-3600)},  # expired
        {"alias": "victim", "alias_token": user_token("victim", aud="another-service")},
        {"alias": "victim", "alias_token": user_token("victim", iss="https://evil.test/")},
    ],
    ids=["no-proof", "own-token", "other-token", "garbage", "forged", "expired", "aud", "iss"],
)
async def test_user_cannot_merge_another_customer_without_its_token(client, victim, body) -> None:
    status, answer = await call(
        client, "POST", "/v1/customers/attacker/aliases", user_auth("attacker"), json=body
    )
    assert status == 403, answer
    assert answer["error"]["code"] == "forbidden"
    assert await aliases_table(client) == []
    assert without_as_of(await read(client, "victim")) == without_as_of(victim)
    attacker = await read(client, "attacker")
    assert attacker["entitlements"] == {}


async def test_user_cannot_claim_an_id_that_does_not_exist_yet(client) -> None:
    status, _ = await call(
        client,
        "POST",
        "/v1/customers/attacker/aliases",
        user_auth("attacker"),
        json={"alias": "future-user"},
    )
    assert status == 403
    assert await aliases_table(client) == []
    # the future user's purchases would still land with the future user
    await call(client, "POST", GRANTS.format("future-user"), auth(ADMIN_KEY), json={})
    assert (await read(client, "future-user"))["app_user_id"] == "future-user"
    assert (await read(client, "attacker"))["entitlements"] == {}


async def test_user_with_the_alias_token_merges_its_anonymous_id(client) -> None:
    await call(client, "POST", GRANTS.format("anon-7"), auth(ADMIN_KEY), json={"duration": "P1M"})
    status, answer = await call(
        client,
        "POST",
        "/v1/customers/u-7/aliases",
        user_auth("u-7"),
        json={"alias": "anon-7", "alias_token": user_token("anon-7")},
    )
    assert status == 200, answer
    assert answer["entitlements"]["premium"]["active"] is True
    assert await aliases_table(client) == [("anon-7", "u-7")]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (auth(ADMIN_KEY), 200),  # an operator needs no alias token
        (auth(WRITER_KEY), 403),
        (auth(READER_KEY), 403),
        (user_auth("u-8"), 403),  # no alias_token
    ],
    ids=["admin", "writer", "reader", "user"],
)
async def test_who_may_merge_without_an_alias_token(client, headers, status) -> None:
    got, _ = await call(
        client, "POST", "/v1/customers/u-8/aliases", headers, json={"alias": "anon-8"}
    )
    assert got == status
    assert await aliases_table(client) == ([("anon-8", "u-8")] if status == 200 else [])


async def test_user_token_for_another_target_is_refused_even_with_a_valid_alias_token(
    client,
) -> None:
    status, _ = await call(
        client,
        "POST",
        "/v1/customers/victim/aliases",
        user_auth("attacker"),
        json={"alias": "anon-9", "alias_token": user_token("anon-9")},
    )
    assert status == 403
    assert await aliases_table(client) == []
