"""Replay's pure core: the fold is ingest's, the comparison names each differing field, and a
purchase the journal cannot fully re-derive is said to be so, never guessed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from entitlements.codec import to_jsonable
from entitlements.model import Status, Store
from entitlements.ownership import Held, decide, keys_to_lock
from entitlements.replay import (
    Difference,
    JournalEntry,
    StoredPurchase,
    compare,
    fold,
    judge,
    unusable,
)
from entitlements.state import view
from server.replay import describe
from tests.factories import subscription_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD, NEW = "tok-old", "tok-new"


def google(purchase_id: str, days: int, **kw):
    return subscription_event(
        store=Store.PLAY_STORE,
        purchase_id=purchase_id,
        transaction_id=f"{purchase_id}-{days}",
        purchased_at=T0,
        signed_at=T0 + timedelta(days=days),
        **kw,
    )


def entry(entry_id: int, purchase_ids=(OLD,), **kw) -> JournalEntry:
    fields = {
        "id": entry_id,
        "store": Store.PLAY_STORE,
        "message_id": f"m-{entry_id}",
        "notification_type": "SUBSCRIPTION_PURCHASED",
        "result": "processed",
        "payload": "{}",
        "reads": {"now": T0.isoformat(), "reads": []},
        "purchase_ids": tuple(purchase_ids),
        "received_at": T0,
    }
    return JournalEntry(**(fields | kw))


def stored_as(state, *, owner="u-1", created_at=T0) -> StoredPurchase:
    return StoredPurchase(
        store=state.store,
        purchase_id=state.purchase_id,
        owner=owner,
        state=to_jsonable(state),
        view=view(state),
        state_updated_at=state.updated_at,
        created_at=created_at,
    )


def ingest(batches):
    """What the service stores for these batches, one transaction each, in this order."""
    states = {}
    for batch in batches:
        held = {k: Held(states.get(k), "u-1") for k in keys_to_lock(batch)}
        for write in decide(held, batch, submitted_by=None, policy="transfer").writes:
            states[(write.state.store, write.state.purchase_id)] = write.state
    return states


def test_the_fold_is_what_ingest_stored_including_supersede_marks() -> None:
    batches = [
        [google(OLD, 0)],
        [google(NEW, 3, supersedes=OLD)],
        [google(OLD, 4, status=Status.EXPIRED)],
        [google("tok-c", 5, supersedes="tok-unknown")],
    ]
    replayed = fold(batches)
    assert replayed == ingest(batches)
    assert replayed[(Store.PLAY_STORE, OLD)].superseded_by == NEW
    assert replayed[(Store.PLAY_STORE, "tok-unknown")].updated_at == T0 + timedelta(days=5)


def test_an_intact_purchase_has_no_difference() -> None:
    state = fold([[google(OLD, 0)], [google(OLD, 1)]])[(Store.PLAY_STORE, OLD)]
    assert compare(stored_as(state), state) == ()


def test_each_damaged_column_and_state_key_is_named_with_both_values() -> None:
    state = fold([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    damaged = stored_as(state)
    damaged = dataclasses.replace(
        damaged,
        view=dataclasses.replace(damaged.view, status=Status.REVOKED, will_renew=False),
        state=dict(damaged.state or {}) | {"store_status": "revoked", "injected": 1},
        state_updated_at=T0 - timedelta(days=1),
    )
    assert compare(damaged, state) == (
        Difference("status", "revoked", "active"),
        Difference("will_renew", "false", "true"),
        Difference("state_updated_at", "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"),
        Difference("state.injected", "1", "null"),
        Difference("state.store_status", "revoked", "active"),
    )
    lost = dataclasses.replace(
        damaged, state={k: v for k, v in damaged.state.items() if k != "transactions"}
    )
    assert Difference("state.transactions", "absent", "[1 items]") in compare(lost, state)


def test_why_an_entry_cannot_be_rederived() -> None:
    assert unusable(entry(1)) is None
    pruned = entry(7, payload=None, reads=None, payload_pruned_at=T0)
    assert unusable(pruned) == "payload pruned 2026-01-01T00:00:00Z (journal entry 7)"
    assert unusable(entry(8, reads=None)) == (
        "journal entry 8 was written before store reads were journaled"
    )


def test_judgement_never_guesses() -> None:
    state = fold([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    damaged = dataclasses.replace(
        stored_as(state), view=dataclasses.replace(view(state), status=Status.EXPIRED)
    )
    one, two = entry(1), entry(2)

    def verdict(stored=damaged, entries=(one, two), blocked=None, since=None):
        return judge(stored, state, entries, blocked or {}, journal_complete_since=since)

    differs = verdict()
    assert differs.differs
    assert differs.entry_ids == (1, 2)
    assert differs.replayed == state
    assert verdict(blocked={2: "payload pruned"}).not_rederivable == "payload pruned"
    both = verdict(blocked={1: "a", 2: "b"})
    assert (both.not_rederivable, both.differs) == ("a and 1 more", False)
    before = verdict(since=T0 + timedelta(seconds=1))
    assert before.not_rederivable == "stored before the journal was complete (2026-01-01T00:00:01Z)"
    assert verdict(entries=()).not_rederivable == "no journal entry applied to it"
    assert not verdict(stored=stored_as(state)).differs


def test_a_report_line_names_the_purchase_by_a_one_way_ref_only() -> None:
    state = fold([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    finding = judge(
        dataclasses.replace(
            stored_as(state), view=dataclasses.replace(view(state), status=Status.EXPIRED)
        ),
        state,
        [entry(1)],
        {},
        journal_complete_since=None,
    )
    line = describe(finding, "differs")
    assert line == "play_store 82675cfb250f customer=u-1 differs: status expired → active"
    assert OLD not in line
    gone = dataclasses.replace(finding, owner=None, not_rederivable="payload pruned")
    assert describe(gone, "not re-derivable").endswith(
        "customer=- not re-derivable: payload pruned"
    )
