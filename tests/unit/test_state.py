"""The pure state machine: tables of statement sequences and a shuffle/duplicate property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlements.model import PeriodType, Status, Store
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
            purchased_at=day(0), signed_at=day(1), store=Store.PLAY_STORE, revoke=True
        ),
    )
    later_active = subscription_event(purchased_at=day(0), signed_at=day(2), store=Store.PLAY_STORE)
    assert view(apply(revoked, later_active)).status is Status.REVOKED
    assert view(apply(revoked, later_active)).revoked_at == day(1)


def test_superseded_purchase_reads_expired() -> None:
    state = apply(None, subscription_event(purchased_at=day(0), store=Store.PLAY_STORE))
    marked = mark_superseded(state, "token-b")
    assert view(marked).superseded is True
    assert view(marked).status is Status.EXPIRED
    assert mark_superseded(marked, "token-a") == mark_superseded(
        mark_superseded(state, "token-a"), "token-b"
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_shuffled_and_duplicated_statements_converge(data) -> None:
    picks = data.draw(st.lists(st.sampled_from(range(len(LIFECYCLE))), max_size=15))
    events = LIFECYCLE + [LIFECYCLE[i] for i in picks]
    shuffled = data.draw(st.permutations(events))
    assert fold(shuffled) == fold(LIFECYCLE)
