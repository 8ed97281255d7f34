"""The pure state machine: tables of statement sequences and a shuffle/duplicate property."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entitlements.model import (
    EventKind,
    Flag,
    FlagStatement,
    Ownership,
    PeriodType,
    PurchaseKind,
    PurchaseView,
    Status,
    Store,
    StoreEvent,
)
from entitlements.state import apply, mark_superseded, view
from tests.factories import subscription_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fold(events):
    state = None
    for e in events:
        state = apply(state, e)
    return state


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


# A realistic lifecycle: trial, renewals, auto-renew off and on, billing failure with
# grace, recovery, refund of the current period, refund reversed, final expiry.
LIFECYCLE = [
    subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        expires_at=day(7),
        period_type=PeriodType.TRIAL,
        signed_at=day(0),
    ),
    subscription_event(
        transaction_id="t2", purchased_at=day(7), expires_at=day(37), signed_at=day(7)
    ),
    subscription_event(
        transaction_id="t2",
        purchased_at=day(7),
        expires_at=day(37),
        signed_at=day(10),
        will_renew=False,
    ),
    subscription_event(
        transaction_id="t2",
        purchased_at=day(7),
        expires_at=day(37),
        signed_at=day(12),
        will_renew=True,
    ),
    subscription_event(
        transaction_id="t2",
        purchased_at=day(7),
        expires_at=day(37),
        signed_at=day(37),
        status=Status.GRACE_PERIOD,
        in_billing_retry=True,
        grace_period_expires_at=day(53),
    ),
    subscription_event(
        transaction_id="t3", purchased_at=day(40), expires_at=day(70), signed_at=day(40)
    ),
    subscription_event(
        transaction_id="t3",
        purchased_at=day(40),
        expires_at=day(70),
        signed_at=day(45),
        revoked_at=day(45),
        status=Status.REVOKED,
    ),
    subscription_event(
        transaction_id="t3", purchased_at=day(40), expires_at=day(70), signed_at=day(50)
    ),
    subscription_event(
        transaction_id="t3",
        purchased_at=day(40),
        expires_at=day(70),
        signed_at=day(60),
        will_renew=False,
    ),
    subscription_event(
        transaction_id="t3",
        purchased_at=day(40),
        expires_at=day(70),
        signed_at=day(70),
        will_renew=False,
        status=Status.EXPIRED,
    ),
]


def test_in_order_lifecycle_views() -> None:
    expected = [
        (Status.ACTIVE, PeriodType.TRIAL, True, None, None),
        (Status.ACTIVE, PeriodType.NORMAL, True, None, None),
        (Status.ACTIVE, PeriodType.NORMAL, False, day(10), None),
        (Status.ACTIVE, PeriodType.NORMAL, True, None, None),
        (Status.GRACE_PERIOD, PeriodType.NORMAL, True, None, day(37)),
        (Status.ACTIVE, PeriodType.NORMAL, True, None, None),
        (Status.REVOKED, PeriodType.NORMAL, True, None, None),
        (Status.ACTIVE, PeriodType.NORMAL, True, None, None),
        (Status.ACTIVE, PeriodType.NORMAL, False, day(60), None),
        (Status.EXPIRED, PeriodType.NORMAL, False, day(60), None),
    ]
    state = None
    for event, (status, period, renew, unsub, billing) in zip(LIFECYCLE, expected, strict=True):
        state = apply(state, event)
        v = view(state)
        assert (v.status, v.period_type, v.will_renew) == (status, period, renew), event
        assert v.unsubscribe_detected_at == unsub
        assert v.billing_issue_detected_at == billing
    assert view(state).revoked_at is None


def test_refund_sets_revoked_at_and_grace_fields() -> None:
    state = fold(LIFECYCLE[:5])
    assert view(state).grace_period_expires_at == day(53)
    state = fold(LIFECYCLE[:7])
    assert view(state).revoked_at == day(45)
    assert view(state).grace_period_expires_at is None


def test_applying_a_statement_twice_is_a_no_op() -> None:
    state = fold(LIFECYCLE)
    for event in LIFECYCLE:
        assert apply(state, event) == state


def test_stale_statement_does_not_restore_access() -> None:
    expired = fold(LIFECYCLE)
    assert apply(expired, LIFECYCLE[1]) == expired


def test_sticky_notification_revocation() -> None:
    event = subscription_event(purchased_at=day(0), store=Store.PLAY_STORE)
    revoked = apply(
        apply(None, event),
        subscription_event(
            purchased_at=day(0),
            signed_at=day(1),
            store=Store.PLAY_STORE,
            revoked_by_notification_at=day(1),
        ),
    )
    later_active = subscription_event(purchased_at=day(0), signed_at=day(2), store=Store.PLAY_STORE)
    assert view(apply(revoked, later_active)).status is Status.REVOKED
    assert view(apply(revoked, later_active)).revoked_at == day(1)


def test_superseded_purchase_reads_expired() -> None:
    state = apply(None, subscription_event(purchased_at=day(0), store=Store.PLAY_STORE))
    marked = mark_superseded(state, "token-b", day(1))
    assert view(marked).superseded is True
    assert view(marked).status is Status.EXPIRED
    assert mark_superseded(marked, "token-a", day(2)) == mark_superseded(
        mark_superseded(state, "token-a", day(2)), "token-b", day(1)
    )


def test_the_mark_dates_the_state_like_any_statement() -> None:
    state = apply(None, subscription_event(purchased_at=day(0), store=Store.PLAY_STORE))
    assert mark_superseded(state, "token-b", day(3)).updated_at == day(3)
    later = apply(state, subscription_event(purchased_at=day(0), signed_at=day(5)))
    assert mark_superseded(later, "token-b", day(3)).updated_at == day(5)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_shuffled_and_duplicated_statements_converge(data) -> None:
    picks = data.draw(st.lists(st.sampled_from(range(len(LIFECYCLE))), max_size=15))
    events = LIFECYCLE + [LIFECYCLE[i] for i in picks]
    shuffled = data.draw(st.permutations(events))
    assert fold(shuffled) == fold(LIFECYCLE)


# --- one clock per comparison -----------------------------------------------------------


def test_verdict_about_the_current_transaction_holds_whatever_its_purchase_time() -> None:
    """The store's verdict is compared with when the transaction was first stated (the
    statement clock), never with the store's purchase time: a purchase time far ahead of
    the statement does not hide a pending or expired verdict."""
    for status in (Status.PENDING, Status.EXPIRED, Status.ON_HOLD, Status.BILLING_RETRY):
        event = subscription_event(
            purchased_at=day(400), expires_at=day(430), signed_at=day(0), status=status
        )
        assert view(apply(None, event)).status is status


def test_a_period_first_stated_after_the_verdict_is_not_covered_by_it() -> None:
    expired = subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        signed_at=day(31),
        will_renew=False,
        status=Status.EXPIRED,
    )
    resubscribed = subscription_event(  # a bare transaction submitted by the app: no verdict
        transaction_id="t2", purchased_at=day(40), signed_at=day(40), status=None
    )
    assert view(fold([expired, resubscribed])).status is Status.ACTIVE
    assert view(fold([resubscribed, expired])).status is Status.ACTIVE


def test_a_re_signed_copy_of_the_current_transaction_keeps_the_verdict() -> None:
    """The app resubmits the current transaction (signed later): the grace verdict about it
    still stands, since the transaction was first stated before the verdict."""
    grace = subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        expires_at=day(30),
        signed_at=day(30),
        status=Status.GRACE_PERIOD,
        in_billing_retry=True,
        grace_period_expires_at=day(46),
    )
    first = subscription_event(transaction_id="t1", purchased_at=day(0), signed_at=day(1))
    copy = replace(  # a bare signed transaction: no renewal info, no verdict
        subscription_event(
            transaction_id="t1", purchased_at=day(0), signed_at=day(35), status=None
        ),
        renewal=None,
    )
    for order in ([first, grace, copy], [copy, grace, first], [grace, copy, first]):
        v = view(fold(order))
        assert (v.status, v.grace_period_expires_at) == (Status.GRACE_PERIOD, day(46))


def test_billing_retry_from_renewal_facts_only_for_the_period_it_saw() -> None:
    failed = subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        signed_at=day(30),
        status=None,
        in_billing_retry=True,
    )
    assert view(fold([failed])).status is Status.BILLING_RETRY
    recovered = subscription_event(
        transaction_id="t2", purchased_at=day(33), signed_at=day(33), status=None
    )
    assert view(fold([failed, recovered])).status is Status.ACTIVE


def unsub(is_set: bool, at: datetime) -> FlagStatement:
    return FlagStatement(Flag.UNSUBSCRIBE, is_set, at)


def billing(is_set: bool, at: datetime) -> FlagStatement:
    return FlagStatement(Flag.BILLING_ISSUE, is_set, at)


def test_detection_times_are_the_stores_not_the_statements() -> None:
    """The statement clock orders reads; the flags carry the store's own times (Google: a
    cancelTime, or a notification's eventTime), which are what is shown."""
    off = subscription_event(
        purchased_at=day(0), signed_at=day(10), will_renew=False, flags=(unsub(True, day(3)),)
    )
    failing = subscription_event(
        purchased_at=day(0),
        signed_at=day(12),
        will_renew=False,
        status=Status.BILLING_RETRY,
        flags=(billing(True, day(11)), unsub(True, day(9))),
    )
    v = view(fold([off, failing]))
    assert (v.unsubscribe_detected_at, v.billing_issue_detected_at) == (day(3), day(11))
    assert view(fold([failing, off])) == v


def test_flags_are_ordered_by_store_time_not_by_arrival() -> None:
    """Google: PURCHASED (on), CANCELED (off), RESTARTED (on), REVOKED (off) delivered in any
    order, each read showing the newest document: the detection is the REVOKED time."""
    reads = [
        subscription_event(
            purchased_at=day(0),
            signed_at=day(20 + i),  # read late, in arrival order
            will_renew=False,
            status=Status.EXPIRED,
            flags=(unsub(is_set, day(i)),),
        )
        for i, is_set in enumerate([False, True, False, True])
    ]
    for order in (reads, reads[::-1], [reads[2], reads[0], reads[3], reads[1]]):
        assert view(fold(order)).unsubscribe_detected_at == day(3)


def test_a_flag_without_any_store_time_shows_none() -> None:
    """A read no notification asked for (a submission) states no flag: nothing to show."""
    submitted = subscription_event(
        purchased_at=day(0), signed_at=day(10), will_renew=False, status=Status.ON_HOLD, flags=()
    )
    v = view(fold([submitted]))
    assert (v.will_renew, v.unsubscribe_detected_at, v.billing_issue_detected_at) == (
        False,
        None,
        None,
    )


def test_a_clear_statement_drops_older_sets() -> None:
    off = subscription_event(purchased_at=day(0), signed_at=day(5), will_renew=False)
    on = subscription_event(purchased_at=day(0), signed_at=day(6), will_renew=True)
    off_again = subscription_event(purchased_at=day(0), signed_at=day(7), will_renew=False)
    assert view(fold([off, on])).unsubscribe_detected_at is None
    assert view(fold([on, off])).unsubscribe_detected_at is None
    assert view(fold([off_again, off, on])).unsubscribe_detected_at == day(7)
    assert view(fold([off, off_again])).unsubscribe_detected_at == day(5)  # the earliest


def test_detections_are_hidden_when_the_current_state_disagrees() -> None:
    """A lost re-enable or recovery notification must not leave a stale detection on a
    purchase whose newest read says it renews / is healthy."""
    stale = (unsub(True, day(3)), billing(True, day(4)))
    healthy = subscription_event(
        purchased_at=day(0), signed_at=day(10), will_renew=True, flags=stale
    )
    v = view(fold([healthy]))
    assert (v.unsubscribe_detected_at, v.billing_issue_detected_at) == (None, None)
    failing = subscription_event(
        purchased_at=day(0), signed_at=day(10), status=Status.ON_HOLD, flags=stale
    )
    assert view(fold([failing])).billing_issue_detected_at == day(4)


def test_of_two_revocation_times_the_earlier_is_kept() -> None:
    base = subscription_event(purchased_at=day(0), store=Store.PLAY_STORE)
    late = subscription_event(
        purchased_at=day(0), signed_at=day(3), revoked_by_notification_at=day(9)
    )
    early = subscription_event(
        purchased_at=day(0), signed_at=day(2), revoked_by_notification_at=day(4)
    )
    assert view(fold([base, late, early])).revoked_at == day(4)
    assert view(fold([base, early, late])).revoked_at == day(4)
    refunded = subscription_event(purchased_at=day(0), signed_at=day(5), revoked_at=day(2))
    assert view(fold([base, late, refunded])).revoked_at == day(2)


def test_refund_of_an_older_transaction_does_not_end_the_current_period() -> None:
    old = subscription_event(transaction_id="t1", purchased_at=day(0), expires_at=day(30))
    current = subscription_event(transaction_id="t2", purchased_at=day(30), expires_at=day(60))
    refund_old = subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        expires_at=day(30),
        signed_at=day(40),
        revoked_at=day(39),
    )
    for order in ([old, current, refund_old], [refund_old, current, old]):
        v = view(fold(order))
        assert (v.status, v.revoked_at, v.expires_at) == (Status.ACTIVE, None, day(60))
    assert view(fold([old, refund_old])).status is Status.REVOKED


def test_revoked_verdict_wins_over_superseded() -> None:
    revoked = subscription_event(purchased_at=day(0), status=Status.REVOKED)
    marked = mark_superseded(fold([revoked]), "token-b", day(1))
    assert view(marked).status is Status.REVOKED


def test_sandbox_flag_comes_from_the_first_statement_with_a_transaction() -> None:
    voided = replace(
        subscription_event(purchased_at=day(0), store=Store.PLAY_STORE, is_sandbox=False),
        transaction=None,
        renewal=None,
        revoked_at=day(1),
    )
    read = subscription_event(purchased_at=day(0), store=Store.PLAY_STORE, is_sandbox=True)
    assert view(fold([voided, read])).is_sandbox is True
    assert view(fold([read, voided])).is_sandbox is True


# --- fields of the view, and what a statement leaves behind --------------------------------


def test_a_purchase_known_only_from_a_notification_reads_as_revoked() -> None:
    """A Google voided-purchase notification can arrive before any Play read: the purchase
    has no transaction yet, and still reads revoked at the notification's time."""
    voided = StoreEvent(
        store=Store.PLAY_STORE,
        purchase_id="tok-v",
        kind=EventKind.REFUNDED,
        occurred_at=day(2),
        is_sandbox=False,
        revoked_at=day(1),
    )
    assert view(fold([voided])) == PurchaseView(
        store=Store.PLAY_STORE,
        purchase_id="tok-v",
        product_id="",
        kind=PurchaseKind.SUBSCRIPTION,
        status=Status.REVOKED,
        period_type=PeriodType.NORMAL,
        will_renew=False,
        expires_at=None,
        grace_period_expires_at=None,
        purchased_at=None,
        is_sandbox=False,
        unsubscribe_detected_at=None,
        billing_issue_detected_at=None,
        revoked_at=day(1),
        ownership=Ownership.PURCHASED,
        superseded=False,
    )
    gone = replace(voided, kind=EventKind.EXPIRED, revoked_at=None, status=Status.EXPIRED)
    v = view(fold([gone]))
    assert (v.status, v.revoked_at, v.will_renew) == (Status.EXPIRED, None, False)


def test_the_view_shows_the_current_transaction() -> None:
    bought = replace(
        subscription_event(
            purchase_id="otx-9",
            transaction_id="t-9",
            product_id="com.example.lifetime",
            purchased_at=day(3),
            signed_at=day(4),
            status=None,
            purchase_kind=PurchaseKind.NON_CONSUMABLE,
            store=Store.APP_STORE,
        ),
        is_sandbox=True,
    )
    assert bought.transaction is not None
    shared = replace(
        bought,
        transaction=replace(bought.transaction, ownership=Ownership.FAMILY_SHARED),
    )
    v = view(fold([shared]))
    assert (v.store, v.purchase_id, v.product_id, v.kind) == (
        Store.APP_STORE,
        "otx-9",
        "com.example.lifetime",
        PurchaseKind.NON_CONSUMABLE,
    )
    assert (v.purchased_at, v.expires_at, v.ownership, v.is_sandbox) == (
        day(3),
        None,
        Ownership.FAMILY_SHARED,
        True,
    )
    assert (v.status, v.will_renew) == (Status.ACTIVE, False)  # nothing renews without intent


def test_the_environment_and_update_time_of_a_purchase() -> None:
    first = replace(
        subscription_event(purchased_at=day(0), signed_at=day(0)), environment="Sandbox"
    )
    later = subscription_event(purchased_at=day(0), signed_at=day(5))  # states no environment
    stale = subscription_event(purchased_at=day(0), signed_at=day(3))
    state = fold([first, later, stale])
    assert (state.environment, state.updated_at) == ("Sandbox", day(5))
    unnamed = subscription_event(purchased_at=day(0), signed_at=day(0))
    named = replace(stale, environment="Production")
    assert fold([unnamed, named]).environment == "Production"


def test_the_replaced_purchase_is_recorded_and_kept() -> None:
    upgrade = subscription_event(
        purchased_at=day(0), store=Store.PLAY_STORE, supersedes="old-token"
    )
    read_again = subscription_event(purchased_at=day(0), signed_at=day(1), store=Store.PLAY_STORE)
    assert fold([upgrade]).supersedes == "old-token"
    assert fold([upgrade, read_again]).supersedes == "old-token"
    assert fold([read_again, upgrade]).supersedes == "old-token"


@pytest.mark.parametrize("verdict", [Status.ACTIVE, Status.BILLING_RETRY, Status.REVOKED])
def test_grace_end_is_shown_only_in_grace(verdict: Status) -> None:
    """Apple's renewal info keeps gracePeriodExpiresDate after the grace period ends."""
    event = subscription_event(
        purchased_at=day(0),
        signed_at=day(40),
        status=verdict,
        in_billing_retry=verdict is Status.BILLING_RETRY,
        grace_period_expires_at=day(46),
        revoked_at=day(40) if verdict is Status.REVOKED else None,
    )
    assert view(fold([event])).grace_period_expires_at is None


def test_grace_from_the_renewal_facts_alone() -> None:
    """No verdict (a renewal info without a status): in billing retry with a grace end is
    the grace period; without one, billing retry (no access)."""
    grace = subscription_event(
        purchased_at=day(0),
        signed_at=day(30),
        status=None,
        in_billing_retry=True,
        grace_period_expires_at=day(46),
    )
    v = view(fold([grace]))
    assert (v.status, v.grace_period_expires_at) == (Status.GRACE_PERIOD, day(46))


def test_a_failure_seen_before_a_new_period_does_not_hold_it_back() -> None:
    failed = subscription_event(
        transaction_id="t1",
        purchased_at=day(0),
        signed_at=day(30),
        status=None,
        in_billing_retry=True,
    )
    renewed = replace(  # the app submits the new period's bare transaction: no renewal info
        subscription_event(
            transaction_id="t2", purchased_at=day(33), signed_at=day(33), status=None
        ),
        renewal=None,
    )
    assert view(fold([failed, renewed])).status is Status.ACTIVE
    assert view(fold([renewed, failed])).status is Status.ACTIVE


def test_the_latest_purchase_is_current_even_with_an_earlier_expiry() -> None:
    """An Apple upgrade mid-year: the new (monthly, higher level) transaction is bought later
    but expires before the upgraded yearly one; the latest purchase is what the user has."""
    yearly = subscription_event(
        transaction_id="t-year",
        product_id="com.example.pro.yearly",
        purchased_at=day(0),
        expires_at=day(365),
        signed_at=day(0),
    )
    monthly = subscription_event(
        transaction_id="t-month",
        product_id="com.example.premium.monthly",
        purchased_at=day(100),
        expires_at=day(130),
        signed_at=day(100),
    )
    for order in ([yearly, monthly], [monthly, yearly]):
        v = view(fold(order))
        assert (v.product_id, v.expires_at) == ("com.example.premium.monthly", day(130))


def test_of_two_transactions_bought_at_once_the_later_expiry_is_current() -> None:
    short = subscription_event(
        transaction_id="t-b", purchased_at=day(0), expires_at=day(30), signed_at=day(0)
    )
    long = subscription_event(
        transaction_id="t-a", purchased_at=day(0), expires_at=day(365), signed_at=day(0)
    )
    for order in ([short, long], [long, short]):
        assert view(fold(order)).expires_at == day(365)


def test_a_refund_signed_at_the_same_instant_as_another_copy_wins() -> None:
    """Two copies of one transaction with the same signature time: the revoked one wins in
    either order (a refund ends access at once)."""
    plain = subscription_event(purchased_at=day(0), signed_at=day(5), status=None)
    refunded = subscription_event(
        purchased_at=day(0), signed_at=day(5), status=None, revoked_at=day(5)
    )
    for order in ([plain, refunded], [refunded, plain]):
        v = view(fold(order))
        assert (v.status, v.revoked_at) == (Status.REVOKED, day(5))


def test_copies_signed_at_the_same_instant_converge_in_either_order() -> None:
    """Ties on the statement clock are broken by content, never by arrival order."""
    a = subscription_event(purchased_at=day(0), expires_at=day(30), signed_at=day(5))
    b = subscription_event(
        purchased_at=day(0), expires_at=day(31), signed_at=day(5), will_renew=False
    )
    assert fold([a, b]) == fold([b, a])
    assert fold([a, b]).transactions[0].expires_at in (day(30), day(31))


@pytest.mark.parametrize(
    ("stated", "signed", "carried", "first"),
    [
        (day(5), day(7), None, day(5)),  # the statement precedes the copy's signature
        (day(7), day(5), None, day(5)),  # the copy was signed before it was delivered
        (day(9), day(5), day(8), day(5)),  # a carried time never beats the signature
        (day(9), day(7), day(3), day(3)),  # an earlier statement carried it already
    ],
)
def test_a_transaction_is_first_stated_at_the_earliest_time_known(
    stated: datetime, signed: datetime, carried: datetime | None, first: datetime
) -> None:
    event = subscription_event(purchased_at=day(0), signed_at=signed)
    assert event.transaction is not None
    event = replace(
        event,
        occurred_at=stated,
        transaction=replace(event.transaction, first_stated_at=carried),
    )
    assert fold([event]).transactions[0].first_stated_at == first


def test_a_verdict_covers_the_transaction_of_its_own_statement() -> None:
    """A notification signed a moment before the transaction it carries: its verdict is
    about that transaction (first stated by this very statement)."""
    event = subscription_event(purchased_at=day(0), signed_at=day(7), status=Status.EXPIRED)
    event = replace(event, occurred_at=day(7) - timedelta(seconds=1))
    assert view(fold([event])).status is Status.EXPIRED


def test_set_and_clear_at_the_same_store_instant_converge() -> None:
    """Auto-renew turned off and on at the same instant (as the store recorded it): the
    answer does not depend on which statement arrived first."""
    off = subscription_event(
        purchased_at=day(0), signed_at=day(10), will_renew=False, flags=(unsub(True, day(4)),)
    )
    on = subscription_event(
        purchased_at=day(0), signed_at=day(11), will_renew=False, flags=(unsub(False, day(4)),)
    )
    assert view(fold([off, on])).unsubscribe_detected_at is None
    assert view(fold([on, off])).unsubscribe_detected_at is None


def test_the_price_shown_is_the_current_periods() -> None:
    from dataclasses import replace

    from entitlements.model import Price

    first = subscription_event(
        transaction_id="t1", purchased_at=day(0), expires_at=day(30), signed_at=day(0)
    )
    second = subscription_event(
        transaction_id="t2", purchased_at=day(30), expires_at=day(60), signed_at=day(30)
    )
    assert first.transaction is not None
    assert second.transaction is not None
    priced = [
        replace(first, transaction=replace(first.transaction, price=Price("9.99", "USD"))),
        replace(second, transaction=replace(second.transaction, price=Price("12.99", "USD"))),
    ]
    assert view(fold(priced)).price == Price("12.99", "USD")
    assert view(fold(reversed(priced))).price == Price("12.99", "USD")
    assert view(fold([first])).price is None
