"""The real Play documents' money (issue 22): every recorded subscriptionsv2 answer, played
through the webhook in order, shows its recorded `recurringPrice` on the purchase ("0" in a
free-trial phase), and `/v1/revenue` counts each paid order id once at that price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conformance.google_realdata import LIFECYCLES, account_id, load_lifecycle
from tests.conformance.test_google_realdata import client, get_customer, play_step
from tests.conftest import ADMIN_KEY, auth
from tests.e2e import google_helpers
from tests.e2e.google_helpers import push_headers

google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play
_ = client  # the fixture, imported for these tests


def recorded_price(document: dict[str, Any]) -> dict[str, str] | None:
    """The price the contract says the purchase shows, from the recorded document itself."""
    [item] = document["lineItems"][:1]
    money = (item.get("autoRenewingPlan") or {}).get("recurringPrice")
    if money is None:
        return None
    if "freeTrial" in (item.get("offerPhase") or {}):
        return {"amount": "0", "currency": money["currencyCode"]}
    amount = Decimal(money.get("units", "0")) + Decimal(money.get("nanos", 0)).scaleb(-9)
    return {"amount": format(amount.normalize(), "f"), "currency": money["currencyCode"]}


@pytest.mark.parametrize("name", LIFECYCLES)
async def test_recorded_prices_and_paid_orders(
    name, realdata, client, fake_play, google_keys, clock
) -> None:
    lifecycle = load_lifecycle(realdata, name)
    user = account_id(name)
    headers = push_headers(google_keys)
    paid: dict[str, Decimal] = {}
    currencies = set()
    for step in lifecycle.steps:
        await play_step(client, fake_play, headers, clock, step, user, 10_000)
        got = await get_customer(client, user)
        mine = [p for p in got["subscriptions"] if p["purchase_token"] == step.token]
        expected = recorded_price(step.document)
        assert [p["price"] for p in mine] == [expected], step.describe()
        order = step.document["lineItems"][0].get("latestSuccessfulOrderId")
        if expected is not None and order and Decimal(expected["amount"]) > 0:
            paid[order] = Decimal(expected["amount"])
            currencies.add(expected["currency"])
    resp = await client.get(
        "/v1/revenue",
        params={"from": "2020-01-01", "to": (clock.now.date()).isoformat()},
        headers=auth(ADMIN_KEY),
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert sum(r["charges"] for r in body["days"]) == len(paid), (name, paid)
    assert sum(Decimal(r["gross"]) for r in body["days"]) == sum(paid.values())
    assert {r["currency"] for r in body["days"]} == currencies
