"""Claiming another customer's purchase (issue 18, attack 2). Transaction ids are not secret
and a legacy receipt's PKCS#7 signature is not checked, so a bare `transaction_id` or
`receipt` submitted with a user token proves nothing: it links only purchases without an
owner or already the user's; a purchase another user owns is 409
`purchase_owned_by_another_user` whatever the transfer policy, for the submitted purchase and
for every purchase the account-history pull brings, and nothing changes. A verified signed
transaction (or a Play purchase token) is proof; a `purchases:write` key vouches for its users
(contract §3 "Purchases submitted by the app"). Over HTTP against the real app, with the App
Store Server API faked on 127.0.0.1 and data signed by a local test CA."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_token
from tests.e2e.test_apple_purchases import signed_tx
from tests.fakes.fake_appstore import app_receipt


async def submit(client, body: dict[str, Any], key: str) -> tuple[int, Any]:
    resp = await client.post("/v1/purchases", json=body, headers=auth(key))
    return resp.status, await resp.json()


async def owned(client, user: str) -> set[str]:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    body = await resp.json()
    return {p["original_transaction_id"] for p in body["subscriptions"] + body["purchases"]}


async def active(client, user: str) -> bool:
    resp = await client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    premium = (await resp.json())["entitlements"].get("premium")
    return bool(premium and premium["active"])


async def audit_rows(client) -> int:
    from api.keys import POOL

    async with client.app[POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM audit_log"))


@pytest.fixture
async def victim(api_client, fake_api, ca_dir, clock) -> str:
    """ "victim" holds 6001 (submitted as a verified signed transaction) and, in the same Apple
    account's history, 6002 (linked by the history pull)."""
    ca = ca_dir[0]
    first = signed_tx(ca, clock, "6001")
    fake_api.add_transaction(first)
    fake_api.add_transaction(
        signed_tx(
            ca,
            clock,
            "6002",
            product="com.example.lifetime",
            product_type="Non-Consumable",
            expires_date=None,
        )
    )
    body = {"app_user_id": "victim", "store": "app_store", "signed_transaction": first}
    assert (await submit(api_client, body, user_token("victim")))[0] == 200
    assert await owned(api_client, "victim") == {"6001", "6002"}
    return "victim"


def claim(form: str, transaction_id: str) -> dict[str, Any]:
    proof = (
        {"receipt": app_receipt([transaction_id])}
        if form == "receipt"
        else {"transaction_id": transaction_id}
    )
    return {"app_user_id": "attacker", "store": "app_store", **proof}


@pytest.mark.parametrize("form", ["transaction_id", "receipt"])
@pytest.mark.parametrize("policy", ["transfer", "keep"])
@pytest.mark.parametrize("target", ["6001", "6002"])
async def test_bare_id_or_receipt_cannot_take_an_owned_purchase(
    make_client,
    config,
    api_client,
    victim,
    form,
    policy,
    target,
) -> None:
    client = api_client
    if policy == "keep":
        config["customers"] = {"transfer_policy": "keep"}
        client = await make_client(config)
    before = await audit_rows(client)
    status, body = await submit(client, claim(form, target), user_token("attacker"))
    assert status == 409, body
    assert body["error"]["code"] == "purchase_owned_by_another_user"
    assert await owned(client, "victim") == {"6001", "6002"}
    assert await active(client, "victim") is True
    assert await owned(client, "attacker") == set()
    assert await audit_rows(client) == before  # no transfer was recorded


async def test_history_pull_cannot_take_the_victims_other_purchases(
    api_client,
    fake_api,
    ca_dir,
    clock,
    victim,
) -> None:
    """The attacker names an unowned transaction of the same account: its history pull would
    link the victim's purchases too; the whole submission is refused."""
    fake_api.add_transaction(
        signed_tx(
            ca_dir[0],
            clock,
            "6003",
            product="com.example.coins",
            product_type="Consumable",
            expires_date=None,
        )
    )
    status, body = await submit(api_client, claim("transaction_id", "6003"), user_token("attacker"))
    assert status == 409, body
    assert await owned(api_client, "victim") == {"6001", "6002"}
    assert await owned(api_client, "attacker") == set()


async def test_bare_id_links_unowned_and_own_purchases(
    api_client,
    fake_api,
    ca_dir,
    clock,
) -> None:
    fake_api.add_transaction(signed_tx(ca_dir[0], clock, "6101"))
    body = {"app_user_id": "u-1", "store": "app_store", "transaction_id": "6101"}
    assert (await submit(api_client, body, user_token("u-1")))[0] == 200
    assert await owned(api_client, "u-1") == {"6101"}
    receipt = {"app_user_id": "u-1", "store": "app_store", "receipt": app_receipt(["6101"])}
    assert (await submit(api_client, receipt, user_token("u-1")))[0] == 200  # its own: fine
    assert await owned(api_client, "u-1") == {"6101"}


async def test_verified_signed_transaction_is_proof(
    api_client,
    ca_dir,
    clock,
    victim,
) -> None:
    """Whoever holds the store-signed transaction holds the purchase (restore on a new
    account): under the default policy it moves."""
    jws = signed_tx(ca_dir[0], clock, "6001")
    body = {"app_user_id": "new-account", "store": "app_store", "signed_transaction": jws}
    status, answer = await submit(api_client, body, user_token("new-account"))
    assert status == 200, answer
    assert await owned(api_client, "new-account") == {"6001", "6002"}
    assert await owned(api_client, "victim") == set()


@pytest.mark.parametrize("key", [WRITER_KEY, ADMIN_KEY])
async def test_backend_key_vouches_for_its_users(api_client, victim, key) -> None:
    body = {"app_user_id": "u-2", "store": "app_store", "transaction_id": "6001"}
    status, answer = await submit(api_client, body, key)
    assert status == 200, answer
    assert await owned(api_client, "u-2") == {"6001", "6002"}
