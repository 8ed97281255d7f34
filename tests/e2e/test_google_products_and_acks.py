"""Google Play one-time products and purchase acknowledgement, end to end: pushes through
POST /webhooks/google, the fake Play API recording acknowledgements, the retry task driven
by its single-pass function and the settable clock (no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api.keys import GOOGLE
from simulators.google_signer import (
    one_time_notification,
    subscription_notification,
    voided_notification,
)
from simulators.play_purchases import product_purchase, subscription_purchase
from tests.e2e import google_helpers
from tests.e2e.google_helpers import (
    COINS,
    LIFETIME,
    MONTHLY,
    PACKAGE,
    USER,
    customer,
    notify,
    push,
    rows,
)

google_keys = google_helpers.google_keys
fake_play = google_helpers.fake_play
google_client = google_helpers.google_client


# --- one-time products -------------------------------------------------------------------


async def product_push(client, fake, keys, clock, product, token, code=1, **kw):
    """The Play API holds `product` (bought now by the test's clock unless `purchase_time`
    says otherwise); push notification `code` now."""
    kw.setdefault("purchase_time", clock.now)
    body = product_purchase(product, user=USER, **kw)
    fake.set_product(PACKAGE, product, token, body)
    note = one_time_notification(PACKAGE, token, product, code, event_time=clock.now)
    return await push(client, keys, note, at=clock.now)


async def test_one_time_non_consumable_grants_for_life_and_is_acknowledged(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    status = await product_push(google_client, fake_play, google_keys, clock, LIFETIME, "p-1")
    assert status == (200, {"status": "processed"})
    got = await customer(google_client, USER)
    premium = got["entitlements"]["premium"]
    assert (premium["active"], premium["expires_at"], premium["store"]) == (
        True,
        None,
        "play_store",
    )
    assert [p["purchase_token"] for p in got["purchases"]] == ["p-1"]
    assert got["subscriptions"] == []
    [ack] = fake_play.acknowledgements
    assert (ack["kind"], ack["product_id"], ack["token"]) == ("product", LIFETIME, "p-1")
    assert await rows(database_url, "SELECT * FROM play_acknowledgements") == []


async def test_consumable_gives_no_entitlement(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    status = await product_push(google_client, fake_play, google_keys, clock, COINS, "p-2")
    assert status == (200, {"status": "processed"})
    got = await customer(google_client, USER)
    assert got["entitlements"] == {}
    [coins] = got["purchases"]
    assert (coins["purchase_token"], coins["product_id"], coins["expires_at"]) == (
        "p-2",
        COINS,
        None,
    )


async def test_pending_product_then_cancelled_never_grants(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    await product_push(
        google_client, fake_play, google_keys, clock, LIFETIME, "p-3", purchase_state=2
    )
    assert (await customer(google_client, USER))["entitlements"] == {}
    assert fake_play.acknowledgements == []  # pending purchases cannot be acknowledged yet
    status = await product_push(
        google_client, fake_play, google_keys, clock, LIFETIME, "p-3", code=2, purchase_state=1
    )
    assert status == (200, {"status": "processed"})
    assert (await customer(google_client, USER))["entitlements"] == {}


@pytest.mark.parametrize("skew", [timedelta(hours=-3), timedelta(seconds=1), timedelta(days=2)])
async def test_pending_purchase_never_grants_whatever_googles_clock_says(
    google_client, fake_play, google_keys, clock, skew
) -> None:
    """Google's clock (`purchaseTimeMillis`, `startTime`, `eventTimeMillis`) ahead of or
    behind this host's: a purchase Google reports pending never grants."""
    store_now = clock.now + skew
    body = product_purchase(LIFETIME, user=USER, purchase_time=store_now, purchase_state=2)
    fake_play.set_product(PACKAGE, LIFETIME, "p-skew", body)
    note = one_time_notification(PACKAGE, "p-skew", LIFETIME, 1, event_time=store_now)
    assert await push(google_client, google_keys, note, at=store_now) == (
        200,
        {"status": "processed"},
    )
    sub = subscription_purchase("pending", now=store_now, user=USER)
    sub["startTime"] = store_now.isoformat()  # a pending plan change may carry one
    fake_play.set_subscription(PACKAGE, "s-skew", sub)
    note = subscription_notification(PACKAGE, "s-skew", 4, event_time=store_now)
    assert (await push(google_client, google_keys, note, at=store_now))[0] == 200
    got = await customer(google_client, USER)
    assert got["entitlements"] == {}
    assert sorted(p["status"] for p in got["purchases"] + got["subscriptions"]) == [
        "pending",
        "pending",
    ]
    clock.advance(days=3)  # whatever time it is here
    assert (await customer(google_client, USER))["entitlements"] == {}


async def test_paid_product_read_as_cancelled_is_revoked(
    google_client,
    fake_play,
    google_keys,
    clock,
) -> None:
    bought = clock.now
    await product_push(google_client, fake_play, google_keys, clock, LIFETIME, "p-4")
    clock.advance(hours=1)
    await product_push(
        google_client, fake_play, google_keys, clock, LIFETIME, "p-4",
        purchase_state=1, purchase_time=bought,
    )  # fmt: skip
    premium = (await customer(google_client, USER))["entitlements"]["premium"]
    assert (premium["status"], premium["active"]) == ("revoked", False)


@pytest.mark.parametrize(
    ("refund_type", "result", "active"), [(1, "processed", False), (2, "ignored", True)]
)
async def test_voided_one_time_product(
    google_client,
    fake_play,
    google_keys,
    clock,
    refund_type,
    result,
    active,
) -> None:
    await product_push(google_client, fake_play, google_keys, clock, LIFETIME, "p-5")
    clock.advance(hours=1)
    voided = voided_notification(
        PACKAGE, "p-5", "GPA.2", event_time=clock.now, product_type=2, refund_type=refund_type
    )
    assert await push(google_client, google_keys, voided, at=clock.now) == (
        200,
        {"status": result},
    )
    assert (await customer(google_client, USER))["entitlements"]["premium"]["active"] is active


# --- acknowledgement -----------------------------------------------------------------------


async def wait_for(predicate, seconds: float = 5.0) -> None:
    """Poll `predicate` until true, failing after `seconds` (never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_new_subscription_is_acknowledged_with_its_line_item_product(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    await notify(google_client, fake_play, google_keys, clock, 4, "active", acknowledged=False)
    [ack] = fake_play.acknowledgements
    assert (ack["kind"], ack["package"], ack["product_id"], ack["token"]) == (
        "subscription",
        PACKAGE,
        MONTHLY,
        "tok-a",
    )
    await notify(google_client, fake_play, google_keys, clock, 2, "active")  # acknowledged now
    assert len(fake_play.acknowledgements) == 1
    assert await rows(database_url, "SELECT * FROM play_acknowledgements") == []


async def test_failed_acknowledgement_is_kept_and_retried_later(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    fake_play.fail(403, times=1, path_contains=":acknowledge")
    body = await notify(
        google_client, fake_play, google_keys, clock, 4, "active", acknowledged=False
    )
    assert body == {"status": "processed"}  # the state is committed whatever the ack did
    assert fake_play.acknowledgements == []
    [row] = await rows(database_url, "SELECT * FROM play_acknowledgements")
    assert (row["attempts"], row["last_error"], row["product_id"]) == (
        1,
        "store_access_denied",
        MONTHLY,
    )
    assert row["next_attempt_at"] == clock.now + timedelta(seconds=30)
    acks = google_client.app[GOOGLE].acks
    assert await acks.retry_due() == 0  # not due yet
    clock.advance(seconds=31)
    await acks.retry_due()

    async def settled() -> bool:
        left = await rows(database_url, "SELECT * FROM play_acknowledgements")
        return bool(fake_play.acknowledgements) and not left

    await wait_for(settled)
    assert [a["token"] for a in fake_play.acknowledgements] == ["tok-a"]


async def test_retry_finds_an_acknowledgement_done_meanwhile(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    fake_play.fail(403, times=1, path_contains=":acknowledge")
    await notify(google_client, fake_play, google_keys, clock, 4, "active", acknowledged=False)
    fake_play.subscriptions[(PACKAGE, "tok-a")]["acknowledgementState"] = (
        "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"  # e.g. acknowledged by the app itself
    )
    clock.advance(minutes=5)
    await google_client.app[GOOGLE].acks.retry_due()
    await wait_for(lambda: _no_pending(database_url))
    assert fake_play.acknowledgements == []


async def _no_pending(database_url: str) -> bool:
    return not await rows(database_url, "SELECT * FROM play_acknowledgements")


async def test_acknowledgement_is_abandoned_after_the_three_day_window(
    google_client,
    fake_play,
    google_keys,
    clock,
    database_url,
) -> None:
    fake_play.fail(403, times=1000, path_contains=":acknowledge")
    await notify(google_client, fake_play, google_keys, clock, 4, "active", acknowledged=False)
    clock.advance(days=3, seconds=1)
    await google_client.app[GOOGLE].acks.retry_due()
    await wait_for(lambda: _no_pending(database_url))
    assert fake_play.acknowledgements == []
