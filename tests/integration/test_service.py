"""The I/O shell: journal dedupe, atomic apply, change-feed events, linking and transfers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api.reads import SERVICE
from entitlements.errors import PurchaseOwnedByAnotherUser
from entitlements.journal import JournalEntry
from entitlements.model import Status, Store
from tests.factories import subscription_event


def note(message_id: str, result: str = "processed") -> JournalEntry:
    return JournalEntry(
        store=Store.APP_STORE,
        message_id=message_id,
        notification_type="SUBSCRIBED",
        subtype="INITIAL_BUY",
        signed_at=None,
        purchase_id="otx-1",
        result=result,
        reason=None,
        payload='{"signedPayload": "..."}',
    )


async def rows(database_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_repeated_message_id_is_a_duplicate_and_changes_nothing(
    client, clock, database_url
) -> None:
    service = client.app[SERVICE]
    first = subscription_event(purchased_at=clock.now, app_user_id="u-1")
    assert (await service.ingest(note("n-1"), [first])).status == "processed"
    revoke = subscription_event(
        purchased_at=clock.now,
        signed_at=clock.now + timedelta(hours=1),
        revoked_at=clock.now + timedelta(hours=1),
        status=Status.REVOKED,
    )
    outcome = await service.ingest(note("n-1"), [revoke])
    assert outcome.status == "duplicate"
    [purchase] = await rows(database_url, "SELECT status, app_user_id FROM purchases")
    assert (purchase["status"], purchase["app_user_id"]) == ("active", "u-1")
    assert len(await rows(database_url, "SELECT * FROM store_notifications")) == 1


async def test_change_feed_gets_one_event_per_change_with_growing_sequence(
    client, clock, database_url
) -> None:
    service = client.app[SERVICE]
    e1 = subscription_event(purchased_at=clock.now, app_user_id="u-1")
    await service.ingest(note("n-1"), [e1])
    await service.ingest(note("n-2"), [e1])  # same statement again: no change, no event
    e2 = subscription_event(
        purchased_at=clock.now, signed_at=clock.now + timedelta(days=1), will_renew=False
    )
    await service.ingest(note("n-3"), [e2])
    events = await rows(
        database_url,
        "SELECT app_user_id, sequence, type, entitlements FROM customer_events ORDER BY id",
    )
    assert [(e["app_user_id"], e["sequence"], e["type"]) for e in events] == [
        ("u-1", 1, "purchased"),
        ("u-1", 2, "purchased"),
    ]
    assert '"will_renew": false' in events[1]["entitlements"]


async def test_ignored_and_rejected_notifications_are_journaled(client, database_url) -> None:
    service = client.app[SERVICE]
    assert (await service.ingest(note("t-1", "ignored"), [])).status == "ignored"
    assert (await service.ingest(note("t-1", "ignored"), [])).status == "duplicate"
    assert (await service.ingest(note("p-1", "rejected"), [])).status == "rejected"
    results = await rows(database_url, "SELECT result FROM store_notifications ORDER BY id")
    assert [r["result"] for r in results] == ["ignored", "rejected"]


async def test_unlinked_purchase_waits_then_links_on_submission(client, clock) -> None:
    service = client.app[SERVICE]
    await service.ingest(note("n-1"), [subscription_event(purchased_at=clock.now)])
    assert (await service.customer_record("u-9")).purchases == ()
    await service.ingest(None, [subscription_event(purchased_at=clock.now)], submitted_by="u-9")
    [p] = (await service.customer_record("u-9")).purchases
    assert p.purchase_id == "otx-1"


async def test_transfer_policy_transfer_moves_and_records_both(client, clock, database_url) -> None:
    service = client.app[SERVICE]
    event = subscription_event(purchased_at=clock.now)
    await service.ingest(None, [event], submitted_by="u-1", proven=True)
    await service.ingest(None, [event], submitted_by="u-2", proven=True)
    assert (await service.customer_record("u-1")).purchases == ()
    assert len((await service.customer_record("u-2")).purchases) == 1
    events = await rows(database_url, "SELECT app_user_id, type FROM customer_events ORDER BY id")
    assert [(e["app_user_id"], e["type"]) for e in events][-2:] in (
        [("u-1", "transferred"), ("u-2", "transferred")],
        [("u-2", "transferred"), ("u-1", "transferred")],
    )


async def test_transfer_policy_keep_refuses(make_client, config, clock) -> None:
    config["customers"] = {"transfer_policy": "keep"}
    client = await make_client(config)
    service = client.app[SERVICE]
    event = subscription_event(purchased_at=clock.now)
    await service.ingest(None, [event], submitted_by="u-1", proven=True)
    with pytest.raises(PurchaseOwnedByAnotherUser):
        await service.ingest(None, [event], submitted_by="u-2", proven=True)
    assert len((await service.customer_record("u-1")).purchases) == 1


async def test_linked_token_supersedes_the_old_one(client, clock) -> None:
    service = client.app[SERVICE]
    old = subscription_event(
        purchase_id="tok-a", purchased_at=clock.now, store=Store.PLAY_STORE, app_user_id="u-1"
    )
    await service.ingest(None, [old])
    new = subscription_event(
        purchase_id="tok-b",
        transaction_id="o-2",
        product_id="com.example.pro.yearly",
        purchased_at=clock.now,
        signed_at=clock.now + timedelta(minutes=1),
        store=Store.PLAY_STORE,
        supersedes="tok-a",
    )
    await service.ingest(None, [new])
    record = await service.customer_record("u-1")
    by_id = {p.purchase_id: p for p in record.purchases}
    assert by_id["tok-a"].superseded is True
    assert by_id["tok-b"].superseded is False  # inherited the owner of tok-a
    # a late statement about the old token does not bring it back
    await service.ingest(
        None,
        [
            subscription_event(
                purchase_id="tok-a",
                purchased_at=clock.now,
                signed_at=clock.now + timedelta(hours=1),
                store=Store.PLAY_STORE,
            )
        ],
    )
    record = await service.customer_record("u-1")
    assert {p.purchase_id: p.superseded for p in record.purchases}["tok-a"] is True


async def test_concurrent_purchases_of_one_customer_never_deadlock(
    client, clock, database_url
) -> None:
    """Several purchases of one customer ingested at once (a user whose subscriptions renew
    together; found by the SIGTERM drill): each transaction's purchase write takes a key-share
    lock on the customer row (the foreign key), so locking that row FOR UPDATE afterwards
    deadlocked two of them (a 500 the store had to retry). FOR NO KEY UPDATE does not conflict
    with a key share: they queue instead."""
    service = client.app[SERVICE]
    await service.ingest(None, [subscription_event(purchased_at=clock.now, app_user_id="u-1")])

    async def one(i: int) -> str:
        event = subscription_event(
            purchase_id=f"otx-many-{i}", purchased_at=clock.now, app_user_id="u-1"
        )
        return (await service.ingest(None, [event])).status

    for _ in range(3):  # a deadlock needs an unlucky interleaving: give it several chances
        assert await asyncio.gather(*(one(i) for i in range(12))) == ["processed"] * 12
        await rows(database_url, "DELETE FROM purchases WHERE purchase_id LIKE 'otx-many-%'")
    events = await rows(database_url, "SELECT sequence FROM customer_events ORDER BY id")
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
