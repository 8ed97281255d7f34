"""`receiptd reconcile google` end to end: the fake Play Developer API's voided purchases and
subscription documents against a service that missed some of them, applied through the real
adapter, ingest and journal, so that replay re-derives everything afterwards."""

from __future__ import annotations

import json
from datetime import timedelta

from entitlements.model import Store
from simulators.google_signer import subscription_notification
from tests.e2e import replay_helpers
from tests.e2e.google_helpers import PACKAGE, USER, customer, iso, notify, push, sub
from tests.e2e.reconcile_helpers import counts, nothing_to_replay, reconcile, voided_item
from tests.e2e.replay_helpers import query

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores

PLAY = Store.PLAY_STORE


async def premium(stores, user: str) -> dict:
    return (await customer(stores.client, user))["entitlements"].get("premium", {})


async def subscribe(s, token: str, user: str = USER) -> None:
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", token, user=user)


async def test_a_voided_purchase_never_notified_is_revoked_at_its_void_time(stores) -> None:
    s = stores
    s.fake_play.clock = s.clock
    await subscribe(s, "tok-a")
    await subscribe(s, "tok-b", user="u-partial")
    s.clock.advance(hours=2)
    voided_at = s.clock.now - timedelta(hours=1)  # Google's time, not when we learn it
    s.fake_play.add_voided(PACKAGE, voided_item("tok-a", "GPA.1", voided_at))
    # Quantity-based partial refunds are not asked for (and would not revoke).
    s.fake_play.add_voided(
        PACKAGE, voided_item("tok-b", "GPA.2", voided_at, voidedQuantity=1), subscription=False
    )
    s.fake_play.add_voided(PACKAGE, voided_item("tok-not-ours", "GPA.3", voided_at))

    outcome, observed = await reconcile(s, PLAY)

    assert (counts(outcome), observed.failures) == ((2, 1, 1, 0), [])
    revoked = await premium(s, USER)
    assert (revoked["status"], revoked["revoked_at"]) == ("revoked", iso(voided_at))
    assert (await premium(s, "u-partial"))["status"] == "active"
    [entry] = await query(
        s.database_url,
        "SELECT message_id, subtype, signed_at, payload FROM store_notifications"
        " WHERE notification_type = 'RECONCILE'",
    )
    assert (entry["message_id"], entry["subtype"]) == (
        f"voided:GPA.1:{voided_item('', '', voided_at)['voidedTimeMillis']}",
        "voided",
    )
    assert entry["signed_at"] == voided_at
    assert json.loads(entry["payload"])["voided_purchase"]["orderId"] == "GPA.1"
    listed = [r for r in s.fake_play.api_requests() if r.path.endswith("/voidedpurchases")]
    assert len(listed) == 1

    # The notification arriving late revokes no earlier; a second run finds it applied.
    s.clock.advance(hours=1)
    outcome, _ = await reconcile(s, PLAY)
    assert counts(outcome) == (2, 0, 0, 0)
    await nothing_to_replay(s)


async def test_a_stale_token_whose_play_state_changed_is_corrected(stores) -> None:
    s = stores
    await subscribe(s, "tok-a")
    await subscribe(s, "tok-b", user="u-other")
    s.clock.advance(hours=25)
    # tok-a expired and its notification never came; tok-b is unchanged.
    s.fake_play.set_subscription(PACKAGE, "tok-a", sub(s.clock, "expired", "tok-a"))

    outcome, observed = await reconcile(s, PLAY)

    assert (counts(outcome), observed.failures) == ((2, 1, 1, 0), [])
    assert observed.steps[-1] == "re-reading held subscriptions"
    assert (await premium(s, USER))["status"] == "expired"
    assert (await premium(s, "u-other"))["status"] == "active"
    [entry] = await query(
        s.database_url,
        "SELECT subtype, purchase_ids, reads FROM store_notifications"
        " WHERE notification_type = 'RECONCILE'",
    )
    assert (entry["subtype"], entry["purchase_ids"]) == ("subscription", ["tok-a"])
    assert json.loads(entry["reads"])["reads"][0]["call"] == "play.subscriptionsv2.get"
    # The unchanged read was not journaled, so tok-b is read again next time; tok-a, expired,
    # is not.
    s.clock.advance(hours=1)
    reads = len(list(s.fake_play.api_requests()))
    outcome, _ = await reconcile(s, PLAY)
    assert counts(outcome) == (1, 0, 0, 0)
    read = [r.path for r in list(s.fake_play.api_requests())[reads:] if "/tokens/" in r.path]
    assert [p.rsplit("/", 1)[1] for p in read] == ["tok-b"]
    await nothing_to_replay(s)


async def test_voided_purchases_are_paged_and_an_interrupted_run_resumes(stores) -> None:
    s = stores
    s.fake_play.clock = s.clock
    tokens = [f"tok-{n}" for n in range(5)]
    for n, token in enumerate(tokens):
        await subscribe(s, token, user=f"u-{n}")
    s.clock.advance(hours=1)
    for n, token in enumerate(tokens):
        s.fake_play.add_voided(PACKAGE, voided_item(token, f"GPA.{n}", s.clock.now))
        s.clock.advance(minutes=1)
    s.fake_play.fail(503, times=4, path_contains="token=")  # page 2, past the retries

    outcome, _ = await reconcile(s, PLAY, voided_page_size=2)

    assert counts(outcome) == (2, 2, 2, 0)
    assert outcome.interrupted is not None
    assert outcome.interrupted.startswith("store_unavailable: ")
    asked = len(list(s.fake_play.api_requests()))

    outcome, observed = await reconcile(s, PLAY, voided_page_size=2)

    assert observed.notes[0].startswith("resuming the run started ")
    assert counts(outcome) == (5, 5, 5, 0)
    pages = [r.path for r in list(s.fake_play.api_requests())[asked:]]
    assert len(pages) == 2  # pages 2 and 3, not page 1 again
    for n in range(5):
        assert (await premium(s, f"u-{n}"))["status"] == "revoked"
    # A late voided notification for one of them is a duplicate of nothing: its own message.
    note = subscription_notification(PACKAGE, "tok-0", 12, event_time=s.clock.now)
    assert await push(s.client, s.keys, note, at=s.clock.now) == (200, {"status": "processed"})
    await nothing_to_replay(s)
