"""Who owns a purchase after a batch, and whose entitlements changed: the pure decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from entitlements.errors import PurchaseOwnedByAnotherUser
from entitlements.model import EventKind, Store
from entitlements.ownership import Held, Transfer, decide, keys_to_lock
from entitlements.state import apply
from tests.factories import subscription_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = (Store.APP_STORE, "otx-1")
OLD = (Store.PLAY_STORE, "tok-old")
NEW = (Store.PLAY_STORE, "tok-new")


def event(key=A, **kw):
    return subscription_event(store=key[0], purchase_id=key[1], purchased_at=T0, **kw)


def held(state_of=None, owner=None):
    return Held(apply(None, state_of) if state_of is not None else None, owner)


def run(holds, events, submitted_by=None, policy="transfer", proven=True):
    return decide(holds, events, submitted_by=submitted_by, policy=policy, proven=proven)


def test_keys_to_lock_cover_replaced_purchases_in_one_order() -> None:
    events = [event(NEW, supersedes=OLD[1]), event(A), event(NEW)]
    assert keys_to_lock(events) == sorted([A, NEW, OLD])
    assert keys_to_lock([event(NEW, supersedes=NEW[1])]) == [NEW]  # not its own replacement


def test_submission_links_to_the_submitter_and_creates_the_customer() -> None:
    d = run({A: held()}, [event()], submitted_by="u-1")
    assert d.owners == {A: "u-1"}
    assert d.new_customers == frozenset({"u-1"})
    assert d.changed == {"u-1": EventKind.PURCHASED.value}
    assert [w.owner for w in d.writes] == ["u-1"]
    assert d.transfers == ()


def test_an_owned_purchase_keeps_its_owner_and_creates_no_customer() -> None:
    d = run({A: held(event(), "u-1")}, [event(kind=EventKind.RENEWED)])
    assert d.owners == {A: "u-1"}
    assert d.new_customers == frozenset()
    assert d.changed == {"u-1": EventKind.RENEWED.value}


def test_transfer_policy_moves_and_tells_both_users() -> None:
    d = run({A: held(event(), "u-1")}, [event()], submitted_by="u-2")
    assert d.owners == {A: "u-2"}
    assert d.changed == {"u-1": "transferred", "u-2": "transferred"}
    assert d.transfers == (Transfer(Store.APP_STORE, "otx-1", "u-1", "u-2"),)


@pytest.mark.parametrize("policy", ["transfer", "keep"])
def test_an_unproven_claim_never_moves_another_users_purchase(policy) -> None:
    """A bare transaction id proves nothing: whatever the policy, another user's purchase is
    refused (the whole batch), while unowned, own and erased owners' purchases link."""
    owned, unowned = held(event(), "u-1"), held()
    b = (Store.APP_STORE, "otx-2")
    with pytest.raises(PurchaseOwnedByAnotherUser, match="does not prove"):
        run({A: unowned, b: owned}, [event(), event(b)], "u-2", policy, proven=False)
    d = run({A: unowned}, [event()], "u-2", policy, proven=False)
    assert (d.owners, d.transfers) == ({A: "u-2"}, ())
    own = run({A: owned}, [event()], "u-1", policy, proven=False)
    assert (own.owners, own.transfers) == ({A: "u-1"}, ())
    erased = Held(apply(None, event()), "erased:abc", owner_erased=True)
    assert run({A: erased}, [event()], "u-2", policy, proven=False).owners == {A: "u-2"}


def test_unproven_is_the_default() -> None:
    with pytest.raises(PurchaseOwnedByAnotherUser):
        decide({A: held(event(), "u-1")}, [event()], submitted_by="u-2", policy="transfer")


def test_keep_policy_refuses_another_user_but_not_the_owner() -> None:
    with pytest.raises(PurchaseOwnedByAnotherUser):
        run({A: held(event(), "u-1")}, [event()], submitted_by="u-2", policy="keep")
    d = run({A: held(event(), "u-1")}, [event()], submitted_by="u-1", policy="keep")
    assert d.owners == {A: "u-1"}
    assert d.transfers == ()


def test_store_hint_links_an_unlinked_purchase_the_last_valid_one_wins() -> None:
    d = run({A: held()}, [event(app_user_id="u-a"), event(app_user_id="u-b")])
    assert d.owners == {A: "u-b"}
    assert d.ignored_hints == ()


def test_a_hint_that_is_not_an_app_user_id_is_ignored_and_reported() -> None:
    d = run({A: held()}, [event(app_user_id="<placeholder set by test>")])
    assert d.owners == {A: None}
    assert d.ignored_hints == (Store.APP_STORE,)
    assert d.changed == {}
    mixed = run({A: held()}, [event(app_user_id="u-ok"), event(app_user_id="bad id")])
    assert mixed.owners == {A: "u-ok"}
    assert mixed.ignored_hints == (Store.APP_STORE,)


def test_a_hint_never_moves_an_owned_purchase() -> None:
    d = run({A: held(event(), "u-1")}, [event(app_user_id="u-2")])
    assert d.owners == {A: "u-1"}


def test_replacement_inherits_the_owner_and_the_old_one_is_superseded() -> None:
    holds = {NEW: held(), OLD: held(event(OLD), "u-1")}
    d = run(holds, [event(NEW, supersedes=OLD[1], kind=EventKind.PURCHASED)])
    assert d.owners == {NEW: "u-1"}
    assert d.changed == {"u-1": EventKind.PURCHASED.value}  # not overwritten by product_changed
    new_write, old_write = d.writes
    assert (new_write.state.purchase_id, new_write.owner) == ("tok-new", "u-1")
    assert (old_write.state.superseded_by, old_write.owner) == ("tok-new", "u-1")


def test_replaced_purchase_owned_by_someone_else_tells_that_user() -> None:
    holds = {NEW: held(event(NEW), "u-2"), OLD: held(event(OLD), "u-1")}
    d = run(holds, [event(NEW, supersedes=OLD[1])])
    assert d.changed == {"u-2": EventKind.PURCHASED.value, "u-1": "product_changed"}


def test_an_unknown_replaced_purchase_gets_a_placeholder_with_the_sandbox_flag() -> None:
    replacing = event(NEW, supersedes=OLD[1], is_sandbox=True, signed_at=T0.replace(day=9))
    d = run({NEW: held(), OLD: held()}, [replacing])
    placeholder = d.writes[-1].state
    assert (placeholder.purchase_id, placeholder.is_sandbox) == ("tok-old", True)
    assert placeholder.superseded_by == "tok-new"
    assert placeholder.transactions == ()
    # Dated by the replacing statement, never by the moment it was ingested (replay).
    assert placeholder.updated_at == T0.replace(day=9)
    assert d.writes[-1].owner is None


def _fold(batches):
    """Each batch through `decide` onto the states the earlier ones left, as ingest does."""
    states = {}
    for batch in batches:
        holds = {key: Held(states.get(key), None) for key in keys_to_lock(batch)}
        for write in run(holds, batch).writes:
            states[(write.state.store, write.state.purchase_id)] = write.state
    return states


def test_a_replaced_purchase_ends_the_same_whichever_batch_comes_first() -> None:
    """Replay folds the journal in its order; concurrent ingests may have applied two
    batches in the other one. The placeholder and the mark must not tell the difference."""
    own = [event(OLD, signed_at=T0.replace(day=2))]
    replacing = [event(NEW, supersedes=OLD[1], signed_at=T0.replace(day=5))]
    late_own = [event(OLD, transaction_id="tx-9", signed_at=T0.replace(day=3))]
    orders = [
        [own, replacing, late_own],
        [replacing, own, late_own],
        [replacing, late_own, own],
        [late_own, replacing, own],
    ]
    results = [_fold(order) for order in orders]
    assert all(r == results[0] for r in results)
    assert results[0][OLD].updated_at == T0.replace(day=5)
    assert results[0][OLD].superseded_by == "tok-new"


def test_the_label_is_the_last_statement_kind() -> None:
    batch = [event(kind=EventKind.PURCHASED), replace(event(), kind=EventKind.RENEWAL_DISABLED)]
    d = run({A: held(event(), "u-1")}, batch)
    assert d.changed == {"u-1": EventKind.RENEWAL_DISABLED.value}


def test_the_batch_folds_onto_the_stored_state_one_statement_after_another() -> None:
    stored = event(transaction_id="t1")
    batch = [
        event(transaction_id="t2", signed_at=T0.replace(day=2)),
        event(transaction_id="t3", signed_at=T0.replace(day=3)),
    ]
    [write] = run({A: held(stored, "u-1")}, batch).writes
    assert {t.transaction_id for t in write.state.transactions} == {"t1", "t2", "t3"}


def test_a_replacement_known_from_an_earlier_batch_needs_no_lock_on_the_old_row() -> None:
    earlier = apply(None, event(NEW, supersedes=OLD[1]))
    d = run({NEW: Held(earlier, None)}, [event(NEW)])  # this batch states no supersedes
    assert d.owners == {NEW: None}
    assert keys_to_lock([event(NEW)]) == [NEW]


def test_the_placeholder_is_of_the_replaced_purchases_store_and_time() -> None:
    d = run({NEW: held(), OLD: held()}, [event(NEW, supersedes=OLD[1])])
    placeholder = d.writes[-1].state
    assert (placeholder.store, placeholder.purchase_id) == (Store.PLAY_STORE, "tok-old")
    assert placeholder.updated_at == T0


def test_an_irrelevant_bad_hint_is_not_reported() -> None:
    """A submission or an existing owner decides: the store's hint is not even looked at."""
    bad = event(app_user_id="not an id")
    assert run({A: held()}, [bad], submitted_by="u-1").ignored_hints == ()
    assert run({A: held(event(), "u-1")}, [bad]).ignored_hints == ()


def test_aliases_stand_for_their_customer() -> None:
    aliases = {"anon-1": "u-1"}
    d = decide({A: held()}, [event()], submitted_by="anon-1", policy="keep", aliases=aliases)
    assert d.owners == {A: "u-1"}
    hinted = decide(
        {A: held()},
        [event(app_user_id="anon-1")],
        submitted_by=None,
        policy="keep",
        aliases=aliases,
    )
    assert hinted.owners == {A: "u-1"}
    same = decide(
        {A: held(event(), "u-1")},
        [event()],
        submitted_by="anon-1",
        policy="keep",
        aliases=aliases,
    )
    assert same.transfers == ()  # the alias is the owner: no transfer, no refusal


def test_an_erased_owners_purchase_goes_to_the_submitter_whatever_the_policy() -> None:
    erased = Held(apply(None, event()), "erased:abc", owner_erased=True)
    d = run({A: erased}, [event()], submitted_by="u-back", policy="keep")
    assert d.owners == {A: "u-back"}
    hint = run({A: erased}, [event(app_user_id="u-hint")])
    assert hint.owners == {A: "erased:abc"}  # a store hint never re-creates the person
