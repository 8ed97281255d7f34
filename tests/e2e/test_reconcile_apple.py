"""`receiptd reconcile apple` end to end: the fake App Store Server API's notification history
(and statuses) against a service that missed some of it, applied through the real adapter,
ingest and journal, so that replay re-derives everything afterwards."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from entitlements.model import Store
from simulators.apple_ca import TestCA, notification_payload
from tests.e2e import replay_helpers
from tests.e2e.apple_helpers import APP_APPLE_ID, BUNDLE_ID, PRODUCT, scenario
from tests.e2e.google_helpers import customer
from tests.e2e.reconcile_helpers import counts, nothing_to_replay, reconcile
from tests.e2e.replay_helpers import apple_notify, apple_tx, query

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores

APPLE = Store.APP_STORE


async def premium(stores, user: str) -> dict:
    return (await customer(stores.client, user))["entitlements"].get("premium", {})


async def test_reconciliation_applies_a_notification_the_service_never_received(stores) -> None:
    s = stores
    received, lost = str(uuid.uuid4()), str(uuid.uuid4())
    known, unknown = scenario(s.ca, user=received), scenario(s.ca, user=lost)
    subscribed = known.body("subscribe", s.clock.now)
    await apple_notify(s, subscribed)  # delivered: in the history and in the journal
    s.fake_api.add_notification(subscribed["signedPayload"])
    s.clock.advance(hours=1)
    never_sent = unknown.body("subscribe", s.clock.now)  # Apple's attempts all failed
    s.fake_api.add_notification(never_sent["signedPayload"], result="TIMED_OUT")
    s.clock.advance(hours=1)
    refund = known.body("refund", s.clock.now)
    s.fake_api.add_notification(refund["signedPayload"], result="NO_RESPONSE")
    s.clock.advance(hours=1)
    assert (await premium(s, received))["status"] == "active"
    assert await premium(s, lost) == {}

    outcome, observed = await reconcile(s, APPLE)

    assert (counts(outcome), outcome.interrupted, observed.failures) == ((3, 2, 2, 0), None, [])
    assert (await premium(s, received))["status"] == "revoked"  # cached read invalidated
    assert (await premium(s, lost))["active"] is True
    journal = await query(
        s.database_url,
        "SELECT notification_type, reason FROM store_notifications ORDER BY id",
    )
    assert [(j["notification_type"], j["reason"]) for j in journal] == [
        ("SUBSCRIBED", None),
        ("SUBSCRIBED", "recovered by reconciliation"),
        ("REFUND", "recovered by reconciliation"),
    ]
    # The delivery Apple retries later is a duplicate; a second run finds nothing missing.
    resp = await s.client.post("/webhooks/apple", json=refund)
    assert await resp.json() == {"status": "duplicate"}
    outcome, _ = await reconcile(s, APPLE)
    assert counts(outcome) == (3, 0, 0, 0)
    await nothing_to_replay(s)


async def test_history_is_paged_and_an_interrupted_run_resumes(stores) -> None:
    s = stores
    users = [str(uuid.uuid4()) for _ in range(23)]  # two pages of 20
    for user in users:
        s.fake_api.add_notification(
            scenario(s.ca, user=user).body("subscribe", s.clock.now)["signedPayload"]
        )
        s.clock.advance(minutes=1)
    # Page 2 fails past the client's retries: the run stops after page 1, resumably.
    s.fake_api.fail_next(503, times=3, when=lambda r: "paginationToken" in r.query)

    outcome, _ = await reconcile(s, APPLE)

    assert counts(outcome) == (20, 20, 20, 0)
    assert outcome.interrupted == "store_unavailable: The App Store Server API is unavailable"
    [run] = await query(s.database_url, "SELECT * FROM reconcile_runs")
    assert run["finished_at"] is None
    position = json.loads(run["position"])
    assert (position["step"], position["done"]) == ("list:Production", 0)
    assert position["cursor"]  # page 2's token: page 1 is done
    pages = len(s.fake_api.requests)

    outcome, observed = await reconcile(s, APPLE)

    assert observed.notes[0].startswith("resuming the run started ")
    assert counts(outcome) == (23, 23, 23, 0)  # the whole run's counts
    resumed = [r for r in s.fake_api.requests[pages:] if r.path.endswith("/history")]
    assert [("paginationToken" in r.query, r.status) for r in resumed] == [(True, 200)]
    for user in users:
        assert (await premium(s, user))["active"] is True
    runs = await query(s.database_url, "SELECT outcome, checked FROM reconcile_runs")
    assert [(r["outcome"], r["checked"]) for r in runs] == [("finished", 23)]
    await nothing_to_replay(s)


async def test_a_stale_subscription_is_read_from_the_status_api(stores) -> None:
    s = stores
    user = str(uuid.uuid4())
    tx = apple_tx(s, "5001", "5001", 23, appAccountToken=user)
    s.fake_api.add_transaction(tx)
    await apple_notify(
        s, {"signedPayload": s.ca.sign(_notification(s, "SUBSCRIBED", "INITIAL_BUY", tx))}
    )
    s.fake_api.set_status(tx, None, 2)  # the status API: expired (its notification was lost)
    s.clock.advance(hours=2)

    outcome, _ = await reconcile(s, APPLE, stale_after=timedelta(hours=3))
    assert counts(outcome) == (0, 0, 0, 0)  # not stale yet: not read
    s.clock.advance(hours=2)
    outcome, _ = await reconcile(s, APPLE, stale_after=timedelta(hours=3))

    assert counts(outcome) == (1, 1, 1, 0)
    assert (await premium(s, user))["status"] == "expired"
    [entry] = await query(
        s.database_url,
        "SELECT subtype, payload, reads FROM store_notifications WHERE notification_type = $1",
        "RECONCILE",
    )
    assert entry["subtype"] == "statuses"
    assert json.loads(entry["payload"])["original_transaction_id"] == "5001"
    assert json.loads(entry["reads"])["reads"][0]["call"] == "apple.get"
    # Expired: no longer re-read.
    outcome, _ = await reconcile(s, APPLE, stale_after=timedelta(hours=3))
    assert counts(outcome) == (0, 0, 0, 0)
    await nothing_to_replay(s)


def _notification(s, ntype: str, subtype: str | None, tx: str) -> dict:
    return notification_payload(
        notification_type=ntype,
        subtype=subtype,
        bundle_id=BUNDLE_ID,
        environment="Sandbox",
        signed_date=s.clock.now,
        app_apple_id=APP_APPLE_ID,
        signed_transaction=tx,
    )


async def test_a_notification_that_does_not_verify_fails_alone(stores) -> None:
    s = stores
    other_ca = TestCA.generate()
    forged = scenario(other_ca).body("subscribe", s.clock.now)
    s.fake_api.add_notification(forged["signedPayload"])
    s.clock.advance(minutes=1)
    user = str(uuid.uuid4())
    good = scenario(s.ca, user=user).body("subscribe", s.clock.now)
    s.fake_api.add_notification(good["signedPayload"])
    s.clock.advance(minutes=1)

    outcome, observed = await reconcile(s, APPLE)

    assert counts(outcome) == (2, 1, 1, 1)
    [(label, reason)] = observed.failures
    assert label.startswith("notification ")
    assert reason.startswith("verification_failed: ")
    assert (await premium(s, user))["product_id"] == PRODUCT  # the good one was applied
