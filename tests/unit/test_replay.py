"""Replay's pure core: the fold is ingest's, the comparison names each differing field, and a
purchase the journal cannot fully re-derive is said to be so, never guessed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from entitlements.codec import to_jsonable
from entitlements.model import Status, Store
from entitlements.ownership import Held, decide, keys_to_lock
from entitlements.replay import (
    ERASURE,
    Difference,
    JournalEntry,
    MissingPurchase,
    Owner,
    Recorded,
    Rederived,
    StoredPurchase,
    compare,
    fold,
    judge,
    judge_missing,
    owner_of,
    shown,
    unusable,
)
from entitlements.state import view
from services.replay import describe
from tests.conftest import clock_start
from tests.factories import subscription_event

T0 = clock_start()  # the injected clock's start: no calendar date of our own
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


def states(batches):
    """The fold's states of plain event batches."""
    return fold([Rederived(tuple(batch)) for batch in batches]).states


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
    replayed = states(batches)
    assert replayed == ingest(batches)
    assert replayed[(Store.PLAY_STORE, OLD)].superseded_by == NEW
    assert replayed[(Store.PLAY_STORE, "tok-unknown")].updated_at == T0 + timedelta(days=5)


def test_an_intact_purchase_has_no_difference() -> None:
    state = states([[google(OLD, 0)], [google(OLD, 1)]])[(Store.PLAY_STORE, OLD)]
    assert compare(stored_as(state), state) == ()


def test_each_damaged_column_and_state_key_is_named_with_both_values() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
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
        Difference("state_updated_at", shown(T0 - timedelta(days=1)), shown(T0)),
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
    assert unusable(pruned) == f"payload pruned {shown(T0)} (journal entry 7)"
    assert unusable(entry(8, reads=None)) == (
        "journal entry 8 was written before store reads were journaled"
    )


def test_judgement_never_guesses() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
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
    when = shown(T0 + timedelta(seconds=1))
    assert before.not_rederivable == f"stored before the journal was complete ({when})"
    assert verdict(entries=()).not_rederivable == "no journal entry applied to it"
    assert not verdict(stored=stored_as(state)).differs


def test_a_report_line_names_the_purchase_by_a_one_way_ref_only() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
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


# --- owners and lost rows -------------------------------------------------------------------


def owners(batches, aliases=None):
    """The owner by the journal of each purchase the batches touch, none recorded."""
    folded = fold(batches, aliases)
    return {key[1]: owner_of(None, owner) for key, owner in folded.owners.items()}


def test_without_a_record_owners_are_the_store_links_or_unknown_after_a_submission() -> None:
    found = owners(
        [
            Rederived((google(OLD, 0, app_user_id="anon-1"),)),  # a hint, since merged
            Rederived((google(NEW, 1, supersedes=OLD),)),  # no hint: the replaced one's owner
            Rederived((google("tok-s", 2),), submitted=True),  # a submitter nobody names
            Rederived((google("tok-s", 3, app_user_id="u-hint"),)),  # the submitter keeps it
            Rederived((google("tok-n", 4),)),  # no hint, nothing replaced: nobody
        ],
        aliases={"anon-1": "u-1"},
    )
    assert found == {
        OLD: Owner("u-1", "store"),
        NEW: Owner("u-1", "store"),
        "tok-s": Owner(None, "unknown"),
        "tok-n": Owner(None, "store"),
    }
    recorded = Recorded("u-9", T0, notification_id=4)
    assert owner_of(recorded, "u-1") == owner_of(recorded, None) == Owner("u-9", "recorded")


def test_a_checkpoint_is_where_an_erased_history_starts() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    later = google(OLD, 2, status=Status.EXPIRED)
    folded = fold(
        [
            Rederived((google(OLD, 1, status=Status.REVOKED),)),
            Rederived(checkpoint=state),
            Rederived((later,)),
        ]
    )
    assert (
        folded.states[(Store.PLAY_STORE, OLD)]
        == states([[google(OLD, 0)], [later]])[(Store.PLAY_STORE, OLD)]
    )
    erased = entry(1, payload=None, reads=None, payload_pruned_at=T0)
    checkpoint = entry(2, notification_type=ERASURE, payload=None, reads=None, checkpoint={})
    assert unusable(checkpoint) is None
    replayed = folded.states[(Store.PLAY_STORE, OLD)]
    blocked = {1: unusable(erased)}
    # Stored before the journal was complete, its entries erased: the checkpoint holds it.
    old = stored_as(replayed, created_at=T0 - timedelta(days=1))
    finding = judge(
        old, replayed, [erased, checkpoint, entry(3)], blocked, journal_complete_since=T0
    )
    assert (finding.not_rederivable, finding.differs) == (None, False)
    without = judge(old, replayed, [erased, entry(3)], blocked, journal_complete_since=None)
    assert without.not_rederivable == blocked[1]


def test_only_a_recorded_owner_is_compared() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    stored = stored_as(state, owner="u-1")

    def verdict(owner):
        return judge(stored, state, [entry(1)], {}, journal_complete_since=None, owner=owner)

    assert verdict(Owner("u-2", "recorded")).differences == (Difference("owner", "u-1", "u-2"),)
    assert verdict(Owner(None, "recorded")).differences == (Difference("owner", "u-1", "null"),)
    assert not verdict(Owner("u-2", "store")).differs
    assert not verdict(Owner(None, "unknown")).differs


def test_a_lost_row_is_missing_with_what_recreating_it_writes_or_why_it_cannot_be() -> None:
    state = states([[google(OLD, 0)]])[(Store.PLAY_STORE, OLD)]
    recorded = Recorded("u-1", T0, notification_id=1)
    lost = MissingPurchase(Store.PLAY_STORE, OLD, recorded)
    owner, first = Owner("u-1", "recorded"), entry(1)

    def verdict(missing=lost, entries=(first,), blocked=None, since=None):
        return judge_missing(
            missing, state, entries, blocked or {}, journal_complete_since=since, owner=owner
        )

    found = verdict()
    assert (found.missing, found.differs, found.replayed, found.owner) == (True, True, state, None)
    assert found.replayed_owner == owner
    assert verdict(blocked={1: "payload pruned"}).not_rederivable == "payload pruned"
    assert verdict(since=T0 + timedelta(seconds=1)).not_rederivable.startswith("stored before")
    unrecorded = MissingPurchase(Store.PLAY_STORE, OLD)  # no first-stored time to judge by
    assert verdict(unrecorded, since=T0 + timedelta(seconds=1)).differs
    assert verdict(entries=()).not_rederivable == "no journal entry applied to it"


def test_a_missing_line_says_what_is_recreated_and_whose_it_is() -> None:
    state = states([[google(OLD, 0, expires_at=T0 + timedelta(days=30))]])[(Store.PLAY_STORE, OLD)]
    lost = MissingPurchase(Store.PLAY_STORE, OLD)

    def line(owner, outcome="missing"):
        found = judge_missing(lost, state, [entry(1)], {}, journal_complete_since=None, owner=owner)
        return describe(found, outcome)

    head = "play_store 82675cfb250f"
    what = f"com.example.premium.monthly, active, expires_at {shown(T0 + timedelta(days=30))}"
    assert line(Owner("u-1", "recorded")) == (
        f"{head} customer=u-1 missing: {what}; from 1 journal entry; owner as journaled"
    )
    assert line(Owner("u-1", "store"), "recreated").endswith(
        "owner not journaled (entries before migration 0009): the store's link"
    )
    assert line(Owner(None, "unknown"), "recreated without a known owner").startswith(
        f"{head} customer=? recreated without a known owner: {what}"
    )
    assert f"{head} customer=- missing" in line(Owner(None, "recorded"))
    assert OLD not in line(Owner("u-1", "recorded"))
