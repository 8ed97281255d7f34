"""Ids that look like another customer's (issue 18: "u-x\\n" read as a different customer that
looks identical in the console and the audit log). Contract §2: an app_user_id is 1-128
characters without control characters or whitespace; anything else is 400, on every route
that takes one, and nothing is written."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth

LOOKALIKES = ["u-x\n", "u-x\r", "u-x ", " u-x", "u-x\t", "u-x\u200b", "u-x\x00", "x" * 129]


def path_of(value: str) -> str:
    return quote(value, safe="")


@pytest.mark.parametrize("value", LOOKALIKES)
async def test_lookalike_ids_are_400_everywhere(client, value) -> None:
    user = path_of(value)
    calls = [
        ("GET", f"/v1/customers/{user}", READER_KEY, None),
        ("GET", f"/v1/customers/{user}/entitlements/premium", READER_KEY, None),
        ("POST", f"/v1/customers/{user}/entitlements/premium/grants", ADMIN_KEY, {}),
        ("DELETE", f"/v1/customers/{user}/entitlements/premium/grants", ADMIN_KEY, {}),
        ("POST", f"/v1/customers/{user}/suspend", ADMIN_KEY, {}),
        ("POST", f"/v1/customers/{user}/unsuspend", ADMIN_KEY, {}),
        ("GET", f"/v1/customers/{user}/export", ADMIN_KEY, None),
        ("DELETE", f"/v1/customers/{user}", ADMIN_KEY, None),
        ("POST", "/v1/customers/u-x/aliases", ADMIN_KEY, {"alias": value}),
        (
            "POST",
            "/v1/purchases",
            WRITER_KEY,
            {
                "app_user_id": value,
                "store": "play_store",
                "package_name": "p",
                "product_id": "p",
                "purchase_token": "t",
            },
        ),
    ]
    for method, path, key, body in calls:
        resp = await client.request(method, path, json=body, headers=auth(key))
        assert resp.status == 400, (method, path, resp.status)
        assert (await resp.json())["error"]["code"] == "invalid_request"
    from api.keys import POOL

    async with client.app[POOL].acquire() as conn:
        for table in ("customers", "grants", "customer_aliases", "audit_log", "customer_events"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_the_plain_id_still_works(client) -> None:
    resp = await client.post(
        "/v1/customers/u-x/entitlements/premium/grants", json={}, headers=auth(ADMIN_KEY)
    )
    assert resp.status == 201
    assert (await resp.json())["app_user_id"] == "u-x"
