"""`receiptd replay` when purchase rows are gone (a partial restore, a bad migration, a hand-made
DELETE): every purchase the journal names is re-derived, reported `missing`, and `--fix`
recreates it exactly as it was, with its owner (recorded by ingest, kept current through
merges and erasure), its change-feed event and its owner's cache invalidated."""

from __future__ import annotations

from api.keys import CACHE
from entitlements.replay import Owner
from server.bootstrap import cache_for_fixes
from storage.replay import Selection
from tests.e2e import replay_helpers
from tests.e2e.google_helpers import USER, customer, notify
from tests.e2e.replay_helpers import (
    query,
    realistic_mix,
    replay,
    snapshot,
)

google_keys = replay_helpers.google_keys
fake_play = replay_helpers.fake_play
fake_api = replay_helpers.fake_api
replay_ca = replay_helpers.replay_ca
replay_api_key = replay_helpers.replay_api_key
stores = replay_helpers.stores


async def test_fix_restores_exactly_the_state_before_delete_from_purchases(stores) -> None:
    mix = await realistic_mix(stores)
    url = stores.database_url
    before = await snapshot(url)
    owners = {row["app_user_id"] for row in before.values()}
    [pseudonym] = [o for o in owners if o and o.startswith("erased:")]
    # The mix did make every kind of owner, and the chain a plan change leaves.
    assert {
        mix.apple_notified, mix.apple_buyer, USER, mix.transferred_to, mix.merged_into, None,
    } <= owners  # fmt: skip
    assert {mix.transferred_from, mix.merged_alias, mix.erased}.isdisjoint(owners)
    assert [k for k, row in before.items() if row["superseded"]]  # tok-a, tok-never-seen
    users = sorted(o for o in owners if o and o != pseudonym)
    reads = {user: await customer(stores.client, user) for user in users}
    assert all(reads[user]["subscriptions"] for user in users)

    await query(url, "DELETE FROM purchases")
    # Readers now see (and the caches hold) the records without purchases: the fix must
    # invalidate them.
    await stores.client.app[CACHE].invalidate(users)
    for user in users:
        assert (await customer(stores.client, user))["subscriptions"] == []

    summary, reported = await replay(stores)
    assert {(f.store.value, f.purchase_id) for f, outcome in reported if outcome == "missing"} == (
        set(before)
    )
    assert len(reported) == summary.missing == summary.checked == len(before)
    assert {f.replayed_owner.source for f, _ in reported} == {"recorded"}
    assert (summary.differing, summary.not_rederivable, summary.fixed) == (0, 0, 0)
    assert not summary.clean  # exit 1
    assert await snapshot(url) == {}  # a replay without --fix writes nothing

    async with cache_for_fixes(stores.settings) as (cache, _note):
        summary, reported = await replay(stores, fix=True, cache=cache)
    assert {outcome for _f, outcome in reported} == {"recreated"}
    assert (summary.missing, summary.fixed, summary.ownerless) == (len(before), len(before), 0)
    assert summary.clean  # exit 0

    assert await snapshot(url) == before
    for user in users:  # each owner's cached (empty) read was invalidated
        assert await customer(stores.client, user) == reads[user], user
    restored = await query(url, "SELECT app_user_id FROM customer_events WHERE type = 'restored'")
    assert {r["app_user_id"] for r in restored} == owners - {None}
    audit = await query(url, "SELECT app_user_id FROM audit_log WHERE action = 'replay_restore'")
    assert sorted(r["app_user_id"] for r in audit) == sorted(
        row["app_user_id"] for row in before.values() if row["app_user_id"]
    )

    summary, reported = await replay(stores)
    assert (reported, summary.missing, summary.differing, summary.clean) == ([], 0, 0, True)
    assert summary.checked == len(before)


async def test_owners_follow_merges_and_erasure_and_a_damaged_owner_is_corrected(stores) -> None:
    mix = await realistic_mix(stores)
    url = stores.database_url
    recorded = await query(url, "SELECT DISTINCT app_user_id FROM purchase_owners")
    named = {r["app_user_id"] for r in recorded}
    assert {mix.merged_alias, mix.erased, mix.transferred_to, mix.transferred_from} & named == {
        mix.transferred_to,
        mix.transferred_from,  # an older entry's owner: the latest one counts
    }
    before = await snapshot(url)
    await query(
        url, "UPDATE purchases SET app_user_id = $1 WHERE app_user_id = $2", USER, mix.apple_buyer
    )

    summary, reported = await replay(stores, fix=True)

    assert {(f.differences[0].field, f.differences[0].replayed) for f, _ in reported} == {
        ("owner", mix.apple_buyer)
    }
    assert summary.fixed == summary.differing == len(reported) >= 2
    assert await snapshot(url) == before
    corrected = await query(
        url, "SELECT DISTINCT app_user_id FROM customer_events WHERE type = 'corrected'"
    )
    assert {r["app_user_id"] for r in corrected} == {USER, mix.apple_buyer}


async def test_customer_and_since_select_lost_rows_by_their_recorded_owner(stores) -> None:
    mix = await realistic_mix(stores)
    url = stores.database_url
    before = await snapshot(url)
    mine = {k for k, row in before.items() if row["app_user_id"] == mix.merged_into}
    assert len(mine) == 2  # the merged purchase and the one linked through the alias
    await query(url, "DELETE FROM purchases")

    async def missing(selection: Selection) -> set[tuple[str, str]]:
        summary, reported = await replay(stores, selection)
        assert summary.missing == len(reported)
        return {(f.store.value, f.purchase_id) for f, _ in reported}

    assert await missing(Selection(customer=mix.merged_into)) == mine
    assert await missing(Selection(customer=mix.merged_alias)) == mine  # an alias: its customer
    assert await missing(Selection(customer=mix.transferred_from)) == set()
    stores.clock.advance(seconds=1)
    assert await missing(Selection(since=stores.clock.now)) == set()
    summary, _ = await replay(stores, Selection(customer=mix.merged_into), fix=True)
    assert summary.fixed == 2
    after = await snapshot(url)
    assert after == {k: before[k] for k in mine}


async def test_without_a_recorded_owner_the_store_link_is_used_never_a_guess(stores) -> None:
    """Entries journaled before owners were recorded (migration 0009): a purchase linked by
    the store's hint gets that owner back; one a submission linked is recreated without an
    owner, and said so (exit 1)."""
    mix = await realistic_mix(stores)
    url = stores.database_url
    before = await snapshot(url)
    await query(url, "DELETE FROM purchase_owners")  # as if journaled before 0009
    await query(url, "DELETE FROM purchases")

    summary, reported = await replay(stores, fix=True)

    found = {(f.store.value, f.purchase_id): (f, outcome) for f, outcome in reported}
    assert set(found) == set(before)
    after = await snapshot(url)
    by_source: dict[str, set[str | None]] = {}
    for key, (finding, outcome) in found.items():
        source = finding.replayed_owner.source
        by_source.setdefault(source, set()).add(before[key]["app_user_id"])
        if source == "unknown":
            assert outcome == "recreated without a known owner"
            assert after[key]["app_user_id"] is None
            assert after[key] == before[key] | {
                "app_user_id": None,
                "created_at": after[key]["created_at"],
            }
        else:
            assert outcome == "recreated"
            assert after[key] | {"created_at": None} == before[key] | {"created_at": None}
    # Hints: Apple's appAccountToken, Google's account id (an alias reads as its customer),
    # and what a linked token inherits; no hint and no submission: no owner, as ingest did.
    assert by_source["store"] >= {mix.apple_notified, USER, mix.merged_into, None}
    # A submission linked these; the pseudonym's entries were erased before its checkpoint.
    assert by_source["unknown"] == {mix.apple_buyer, mix.transferred_to, USER, _pseudonym(before)}
    assert summary.ownerless == len([f for f, o in found.values() if o.endswith("known owner")])
    assert not summary.clean  # exit 1: owners to link by hand

    summary, reported = await replay(stores)  # the rows exist: nothing is known to differ
    assert (reported, summary.clean) == ([], True)


def _pseudonym(before) -> str:
    [pseudonym] = {
        row["app_user_id"]
        for row in before.values()
        if (row["app_user_id"] or "").startswith("erased:")
    }
    return pseudonym


async def test_a_lost_row_whose_entries_are_pruned_is_missing_and_not_rederivable(stores) -> None:
    await realistic_mix(stores)
    url = stores.database_url
    await query(
        url,
        "UPDATE store_notifications SET payload = NULL, reads = NULL,"
        " payload_pruned_at = received_at WHERE store = 'play_store'",
    )
    await query(url, "DELETE FROM purchases WHERE store = 'play_store'")

    summary, reported = await replay(stores, fix=True)

    assert {o for _f, o in reported} == {"missing, not re-derivable"}
    assert all(f.not_rederivable.startswith("payload pruned") for f, _ in reported)
    assert summary.missing == summary.not_rederivable == len(reported) > 0
    assert (summary.fixed, summary.clean) == (0, False)  # lost and not recoverable: exit 1


async def test_a_replaced_purchase_lends_its_owner_across_pages_when_none_was_recorded(
    stores,
) -> None:
    s = stores
    await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-x", user="u-chain")
    for n in range(replay_helpers.BATCH - 1):  # the replacing token lands on the next page
        s.clock.advance(minutes=1)
        await notify(s.client, s.fake_play, s.keys, s.clock, 4, "active", f"tok-{n}")
    s.clock.advance(minutes=1)
    await notify(
        s.client, s.fake_play, s.keys, s.clock, 4, "active", "tok-y", user=None,
        linked_token="tok-x",
    )  # fmt: skip
    before = await snapshot(s.database_url)
    assert before[("play_store", "tok-y")]["app_user_id"] == "u-chain"
    await query(s.database_url, "DELETE FROM purchase_owners")  # as if journaled before 0009
    await query(s.database_url, "DELETE FROM purchases")

    summary, reported = await replay(stores, fix=True)

    [chained] = [f for f, _ in reported if f.purchase_id == "tok-y"]
    assert chained.replayed_owner == Owner("u-chain", "store")
    assert summary.clean
    after = await snapshot(s.database_url)
    assert {k: row["app_user_id"] for k, row in after.items()} == {
        k: row["app_user_id"] for k, row in before.items()
    }


async def test_a_lost_purchase_no_entry_names_is_found_through_its_owner_record(stores) -> None:
    """Stored before the journal kept submissions (0005): migration 0009 copied its owner, so
    its loss is reported, though nothing can recreate it."""
    await query(
        stores.database_url,
        """INSERT INTO purchase_owners (store, purchase_id, app_user_id, purchase_created_at)
           SELECT 'app_store', 'old-1', 'u-old', applied_at - interval '1 day'
           FROM schema_migrations WHERE version = 5""",
    )

    summary, reported = await replay(stores, Selection(customer="u-old"), fix=True)

    [(finding, outcome)] = reported
    assert (finding.purchase_id, outcome) == ("old-1", "missing, not re-derivable")
    assert finding.not_rederivable.startswith("stored before the journal was complete")
    assert (summary.missing, summary.clean) == (1, False)
    assert await snapshot(stores.database_url) == {}
    summary, reported = await replay(stores, Selection(customer="u-other"))
    assert (reported, summary.clean) == ([], True)
