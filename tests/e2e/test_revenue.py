"""Money from the stores' own figures (issue 22): each purchase's price, every charge and
refund counted once on the store's dates, `GET /v1/revenue` per day and MRR, matching sums
computed by hand — an Apple lifecycle (a free trial, renewals, a price increase, a refund)
and a Play one (recurringPrice, a free-trial phase, renewals told apart by their order id,
a revocation), delivered in order and shuffled with duplicates."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from simulators.apple_ca import notification_payload, renewal_payload, transaction_payload
from simulators.google_signer import subscription_notification
from simulators.play_purchases import subscription_purchase
from tests.conftest import ADMIN_KEY, READER_KEY, WRITER_KEY, auth, user_auth
from tests.e2e import google_helpers, replay_helpers
from tests.e2e.apple_helpers import BUNDLE_ID, PRODUCT
from tests.e2e.google_helpers import MONTHLY, PACKAGE, push
from tests.e2e.test_console_http import page, sign_in

google_keys = google_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores

DAY = timedelta(days=1)


def day(moment: datetime) -> str:
    return moment.date().isoformat()


async def revenue(client, first: date | str, last: date | str, **query: str) -> dict[str, Any]:
    params = {"from": str(first), "to": str(last), **query}
    resp = await client.get("/v1/revenue", params=params, headers=auth(ADMIN_KEY))
    body = await resp.json()
    assert resp.status == 200, body
    return body


class AppleSubscriber:
    """One Apple subscription whose notifications carry prices."""

    def __init__(self, s, user: str | None = None) -> None:
        self.s = s
        self.user = user or str(uuid.uuid4())
        self.original = str(random.randrange(10**15, 10**16))
        self.n = 0

    def body(
        self, kind: str, start: datetime, days: int, milliunits: int, *, signed: datetime, **tx: Any
    ) -> tuple[dict[str, str], str]:
        """A notification of `kind` stating transaction #n (a period from `start`)."""
        self.n += 1
        tx_id = f"{self.original}{self.n:02d}"
        transaction = transaction_payload(
            bundle_id=BUNDLE_ID, environment="Sandbox", transaction_id=tx_id,
            original_transaction_id=self.original, product_id=PRODUCT, purchase_date=start,
            expires_date=start + timedelta(days=days), signed_date=signed,
            app_account_token=self.user, price=milliunits, currency="USD", **tx,
        )  # fmt: skip
        renewal = renewal_payload(
            environment="Sandbox", original_transaction_id=self.original,
            product_id=PRODUCT, signed_date=signed,
        )  # fmt: skip
        payload = notification_payload(
            notification_type=kind, subtype=None, bundle_id=BUNDLE_ID, environment="Sandbox",
            signed_date=signed, app_apple_id=1234567890,
            signed_transaction=self.s.ca.sign(transaction),
            signed_renewal=self.s.ca.sign(renewal), status=1,
            notification_uuid=str(uuid.uuid4()),
        )  # fmt: skip
        return {"signedPayload": self.s.ca.sign(payload)}, tx_id


async def deliver(s, body: dict[str, str]) -> None:
    resp = await s.client.post("/webhooks/apple", json=body)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] in {"processed", "duplicate"}


def apple_lifecycle(s) -> tuple[AppleSubscriber, list[dict[str, str]], datetime]:
    """A free week, two months at 9.99, a price increase to 12.99, then that charge refunded
    three days in. Returns the notifications in the order Apple sent them."""
    t0 = s.clock.now
    who = AppleSubscriber(s)
    trial, _ = who.body("SUBSCRIBED", t0, 7, 0, signed=t0, offerType=1,
                        offerDiscountType="FREE_TRIAL")  # fmt: skip
    renew1, _ = who.body("DID_RENEW", t0 + 7 * DAY, 30, 9990, signed=t0 + 7 * DAY)
    renew2, _ = who.body("DID_RENEW", t0 + 37 * DAY, 30, 9990, signed=t0 + 37 * DAY)
    renew3, _ = who.body("DID_RENEW", t0 + 67 * DAY, 30, 12990, signed=t0 + 67 * DAY)
    who.n -= 1  # the refund re-states transaction #4, now revoked
    refund, _ = who.body(
        "REFUND", t0 + 67 * DAY, 30, 12990, signed=t0 + 70 * DAY,
        revocationDate=int((t0 + 70 * DAY).timestamp() * 1000), revocationReason=0,
        revocationType="REFUND_FULL",
    )  # fmt: skip
    return who, [trial, renew1, renew2, renew3, refund], t0


def expected_apple_days(t0: datetime) -> list[dict[str, Any]]:
    def row(at: datetime, gross="0", refunded="0", charges=0, refunds=0) -> dict[str, Any]:
        return {"date": day(at), "store": "app_store", "currency": "USD", "gross": gross,
                "refunded": refunded, "charges": charges, "refunds": refunds}  # fmt: skip

    return [
        row(t0 + 7 * DAY, gross="9.99", charges=1),
        row(t0 + 37 * DAY, gross="9.99", charges=1),
        row(t0 + 67 * DAY, gross="12.99", charges=1),
        row(t0 + 70 * DAY, refunded="12.99", refunds=1),
    ]


async def test_an_apple_lifecycle_sums_to_what_was_charged(stores) -> None:
    s = stores
    who, notes, t0 = apple_lifecycle(s)
    for note in notes[:4]:
        await deliver(s, note)
    s.clock.now = t0 + 68 * DAY
    customer = await (
        await s.client.get(f"/v1/customers/{who.user}", headers=auth(READER_KEY))
    ).json()
    [sub] = customer["subscriptions"]
    assert sub["price"] == {"amount": "12.99", "currency": "USD"}  # the current period's
    export = await s.client.get(f"/v1/customers/{who.user}/export", headers=auth(ADMIN_KEY))
    [stored] = (await export.json())["purchases"]
    assert (stored["price_amount"], stored["price_currency"]) == ("12.99", "USD")
    _resp, cookie = await sign_in(s.client)
    _status, html = await page(s.client, f"/console/customers/{who.user}", cookie)
    assert "<td>12.99 USD</td>" in html
    mid = await revenue(s.client, day(t0), day(t0 + 40 * DAY))
    assert mid["mrr"] == [{"currency": "USD", "amount": "9.99", "subscriptions": 1}]
    assert (await revenue(s.client, day(t0), day(t0 + 3 * DAY)))["mrr"] == []  # trial: free
    await deliver(s, notes[4])
    body = await revenue(s.client, day(t0), day(t0 + 90 * DAY))
    assert body["days"] == expected_apple_days(t0)
    at_increase = await revenue(s.client, day(t0), day(t0 + 68 * DAY))
    assert at_increase["mrr"] == [{"currency": "USD", "amount": "12.99", "subscriptions": 1}]
    assert body["mrr"] == []  # refunded: no paying subscription left
    # Only real money: none here (Sandbox).
    assert await revenue(s.client, day(t0), day(t0 + 90 * DAY), sandbox="false") == {
        "days": [],
        "mrr": [],
    }
    assert (await revenue(s.client, day(t0), day(t0 + 90 * DAY), sandbox="true"))["days"]


async def test_shuffled_and_repeated_deliveries_count_each_charge_once(stores) -> None:
    s = stores
    _who, notes, t0 = apple_lifecycle(s)
    deliveries = notes * 2
    random.Random(7).shuffle(deliveries)
    for note in deliveries:
        await deliver(s, note)
    body = await revenue(s.client, day(t0), day(t0 + 90 * DAY))
    assert body["days"] == expected_apple_days(t0)


async def test_a_play_lifecycle_counts_paid_periods_by_order_id(stores) -> None:
    s = stores
    token, user = "tok-money", "u-money"
    t0 = s.clock.now
    start = t0

    async def read_as(state: str, expiry: datetime, order: str, phase: str, code: int) -> None:
        purchase = subscription_purchase(
            state, now=s.clock.now, start=start, expiry=expiry, order_id=order,
            offer_phase=phase, user=user, product_id=MONTHLY,
        )  # fmt: skip
        s.fake_play.set_subscription(PACKAGE, token, purchase)
        note = subscription_notification(PACKAGE, token, code, event_time=s.clock.now)
        status, body = await push(s.client, s.keys, note, at=s.clock.now)
        assert status == 200, body

    # A free week (its order costs nothing), then monthly periods at 4.99 EUR.
    await read_as("active", t0 + 7 * DAY, "GPA.1111-2222-3333-44444", "trial", 4)
    s.clock.now = t0 + 7 * DAY + timedelta(minutes=5)
    await read_as("active", t0 + 37 * DAY, "GPA.1111-2222-3333-44444..0", "base", 2)
    s.clock.now = t0 + 20 * DAY
    await read_as("active", t0 + 37 * DAY, "GPA.1111-2222-3333-44444..0", "base", 2)  # again
    s.clock.now = t0 + 37 * DAY + timedelta(minutes=5)
    await read_as("active", t0 + 67 * DAY, "GPA.1111-2222-3333-44444..1", "base", 2)
    resp = await s.client.get(f"/v1/customers/{user}", headers=auth(READER_KEY))
    assert (await resp.json())["subscriptions"][0]["price"] == {"amount": "4.99", "currency": "EUR"}

    def row(at: datetime, gross="0", refunded="0", charges=0, refunds=0) -> dict[str, Any]:
        return {"date": day(at), "store": "play_store", "currency": "EUR", "gross": gross,
                "refunded": refunded, "charges": charges, "refunds": refunds}  # fmt: skip

    # Each renewal charged when the period before it ended, as Play stated it.
    paid = [row(t0 + 7 * DAY, gross="4.99", charges=1), row(t0 + 37 * DAY, gross="4.99", charges=1)]
    body = await revenue(s.client, day(t0), day(t0 + 40 * DAY))
    assert body == {
        "days": paid,
        "mrr": [{"currency": "EUR", "amount": "4.99", "subscriptions": 1}],
    }
    # Play revokes it (a refund) on day 40: refunded then, no paying subscription after.
    s.clock.now = t0 + 40 * DAY
    await read_as("expired", t0 + 40 * DAY, "GPA.1111-2222-3333-44444..1", "base", 12)
    body = await revenue(s.client, day(t0), day(t0 + 45 * DAY))
    assert body == {
        "days": [*paid, row(t0 + 40 * DAY, refunded="4.99", refunds=1)],
        "mrr": [],
    }


async def test_revenue_needs_an_admin_key_and_dates(stores) -> None:
    s = stores
    query = "/v1/revenue?from=2026-01-01&to=2026-01-31"
    assert (await s.client.get(query)).status == 401
    for headers in (auth(READER_KEY), auth(WRITER_KEY), user_auth("u-1")):
        assert (await s.client.get(query, headers=headers)).status == 403
    for query in ("", "from=2026-01-01", "from=2026-01-31&to=2026-01-01", "from=x&to=y",
                  "from=2026-01-01&to=2026-01-02&sandbox=maybe"):  # fmt: skip
        resp = await s.client.get(f"/v1/revenue?{query}", headers=auth(ADMIN_KEY))
        assert resp.status == 400, query


async def test_concurrent_writers_count_every_charge_once(stores) -> None:
    """Many purchases charged on the same days at once, each notification delivered twice
    concurrently: the rollup rows every writer updates end exact, and nobody deadlocks."""
    s = stores
    t0 = s.clock.now
    notes = []
    for i in range(12):
        who = AppleSubscriber(s)
        first, _ = who.body("SUBSCRIBED", t0, 30, 9990 + i * 1000, signed=t0)
        renew, _ = who.body("DID_RENEW", t0 + 30 * DAY, 30, 9990 + i * 1000, signed=t0 + 30 * DAY)
        notes += [first, renew, first, renew]
    random.Random(3).shuffle(notes)
    await asyncio.gather(*(deliver(s, note) for note in notes))
    body = await revenue(s.client, day(t0), day(t0 + 31 * DAY))
    total = sum(Decimal(9990 + i * 1000) / 1000 for i in range(12))
    assert [(r["date"], r["charges"], Decimal(r["gross"])) for r in body["days"]] == [
        (day(t0), 12, total),
        (day(t0 + 30 * DAY), 12, total),
    ]
    assert body["mrr"] == [{"currency": "USD", "amount": str(total), "subscriptions": 12}]


async def test_replay_re_derives_prices_and_money_rows(stores) -> None:
    """Rows stored before prices were kept (a NULL price, no charge, no rollup) come back
    from the journal with `replay --fix`: the same sums as if they had been counted live."""
    s = stores
    _who, notes, t0 = apple_lifecycle(s)
    for note in notes:
        await deliver(s, note)
    live = await revenue(s.client, day(t0), day(t0 + 90 * DAY))
    conn = await asyncpg.connect(s.database_url)
    try:
        await conn.execute("UPDATE purchases SET price_amount = NULL, price_currency = NULL")
        await conn.execute("DELETE FROM charges; DELETE FROM revenue_daily; DELETE FROM mrr_daily")
    finally:
        await conn.close()
    assert await revenue(s.client, day(t0), day(t0 + 90 * DAY)) == {"days": [], "mrr": []}
    summary, reported = await replay_helpers.replay(s, fix=True)
    assert (summary.differing, summary.fixed) == (1, 1), reported
    assert await revenue(s.client, day(t0), day(t0 + 90 * DAY)) == live
    assert live["days"] == expected_apple_days(t0)
