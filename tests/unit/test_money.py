"""The pure money rules (entitlements/money.py): which transactions are charges, when, for
how many months, what each adds to the daily rollups, and refunds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from entitlements import money
from entitlements.model import (
    Ownership,
    Price,
    PurchaseKind,
    PurchaseState,
    Store,
    TransactionFacts,
    decimal_text,
)

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def tx(n: int, amount: str | None, *, start=T0, days=30, **kw) -> TransactionFacts:
    return TransactionFacts(
        transaction_id=kw.pop("transaction_id", f"t{n}"),
        product_id="monthly",
        kind=kw.pop("kind", PurchaseKind.SUBSCRIPTION),
        purchased_at=start,
        signed_at=start,
        expires_at=kw.pop("expires_at", start + days * DAY),
        price=None if amount is None else Price(amount, "USD"),
        order_id=kw.pop("order_id", f"t{n}"),
        **kw,
    )


def state(*txs: TransactionFacts, store=Store.APP_STORE, **kw) -> PurchaseState:
    return PurchaseState(
        store, "p1", kw.pop("sandbox", False), T0, transactions=txs, app="app", **kw
    )


def test_paid_transactions_are_charges_and_free_or_shared_ones_are_not() -> None:
    found = money.charges_of(
        state(
            tx(1, "0"),  # a free trial
            tx(2, "9.99", start=T0 + 7 * DAY),
            tx(3, "9.99", ownership=Ownership.FAMILY_SHARED),
            tx(4, None),
            tx(5, "4.99", order_id=None),
        )
    )
    assert found == [
        money.Charge(
            store=Store.APP_STORE, purchase_id="p1", charge_id="t2", product_id="monthly",
            app="app", is_sandbox=False, amount=Decimal("9.99"), currency="USD",
            charged_at=T0 + 7 * DAY, period_end=T0 + 37 * DAY, months=Decimal(1),
        )
    ]  # fmt: skip


def test_one_time_purchases_charge_without_a_period() -> None:
    [charge] = money.charges_of(
        state(tx(1, "2.99", kind=PurchaseKind.NON_CONSUMABLE, expires_at=None))
    )
    assert (charge.period_end, charge.months) == (None, None)


@pytest.mark.parametrize(
    ("days", "months"),
    [
        (7, Decimal(12) / 52),
        (14, Decimal(12) / 52 * 2),
        (28, Decimal(1)),
        (31, Decimal(1)),
        (91, Decimal(3)),
        (182, Decimal(6)),
        (365, Decimal(12)),
        (3, Decimal(12) / 52),
    ],
)
def test_period_months(days, months) -> None:
    assert money.period_months(T0, T0 + days * DAY) == months


def test_a_period_without_length_has_no_months() -> None:
    assert money.period_months(T0, T0) is None


def test_refunds_are_the_stores_revocations_but_not_family_ones() -> None:
    refunded = tx(1, "9.99", revoked_at=T0 + 3 * DAY, revocation_reason="refund_full:other")
    family = tx(2, "9.99", revoked_at=T0 + 3 * DAY, revocation_reason="family_revoke")
    found = {c.charge_id: c.refunded_at for c in money.charges_of(state(refunded, family))}
    assert found == {"t1": T0 + 3 * DAY, "t2": None}


def test_a_play_revocation_refunds_the_current_period() -> None:
    current = tx(1, "4.99", start=T0, transaction_id="tok", order_id="GPA.1")
    found = money.charges_of(state(current, store=Store.PLAY_STORE, revoked_at=T0 + DAY))
    assert [c.refunded_at for c in found] == [T0 + DAY]


def test_a_play_renewal_is_charged_when_the_period_before_ended() -> None:
    before = state(
        tx(1, "0", days=7, transaction_id="tok", order_id="GPA.1"), store=Store.PLAY_STORE
    )
    after = state(
        tx(1, "4.99", expires_at=T0 + 37 * DAY, transaction_id="tok", order_id="GPA.1..0"),
        store=Store.PLAY_STORE,
    )
    [charge] = money.charges_of(after, before)
    assert (charge.charged_at, charge.months) == (T0 + 7 * DAY, Decimal(1))


def test_a_play_renewal_without_the_period_before_is_estimated_from_its_order() -> None:
    after = state(
        tx(1, "4.99", expires_at=T0 + 90 * DAY, transaction_id="tok", order_id="GPA.1..1"),
        store=Store.PLAY_STORE,
    )
    [charge] = money.charges_of(after)
    assert charge.charged_at == T0 + 60 * DAY  # the third of three 30-day periods
    assert money.play_period_start("GPA.1", T0, T0 + 30 * DAY) == T0
    assert money.play_period_start("GPA.1..0", T0, None) == T0
    assert money.play_period_start("GPA.1..0", T0, T0 - DAY) == T0


def charge(**kw) -> money.Charge:
    fields = {
        "store": Store.APP_STORE, "purchase_id": "p", "charge_id": "c", "product_id": "m",
        "app": None, "is_sandbox": False, "amount": Decimal("12.00"), "currency": "EUR",
        "charged_at": T0, "period_end": T0 + 30 * DAY, "months": Decimal(1),
    } | kw  # fmt: skip
    return money.Charge(**fields)


def d(at: datetime, **kw) -> money.Delta:
    return money.Delta(at.date(), Store.APP_STORE, "EUR", False, **kw)


def test_a_charge_adds_revenue_and_mrr_for_its_period() -> None:
    assert money.charge_deltas(charge()) == [
        d(T0, gross=Decimal("12.00"), charges=1),
        d(T0, mrr=Decimal(12), subscriptions=1),
        d(T0 + 30 * DAY, mrr=Decimal(-12), subscriptions=-1),
    ]


def test_a_charge_already_refunded_ends_its_mrr_at_the_refund() -> None:
    refunded = charge(refunded_at=T0 + 5 * DAY)
    assert money.charge_deltas(refunded) == [
        d(T0, gross=Decimal("12.00"), charges=1),
        d(T0, mrr=Decimal(12), subscriptions=1),
        d(T0 + 5 * DAY, mrr=Decimal(-12), subscriptions=-1),
        d(T0 + 5 * DAY, refunded=Decimal("12.00"), refunds=1),
    ]


def test_a_refund_before_the_charge_adds_no_mrr() -> None:
    assert money.charge_deltas(charge(refunded_at=T0 - DAY)) == [
        d(T0, gross=Decimal("12.00"), charges=1),
        d(T0 - DAY, refunded=Decimal("12.00"), refunds=1),
    ]


def test_a_refund_stated_later_moves_the_end_of_its_mrr() -> None:
    assert money.refund_deltas(charge(), T0 + 5 * DAY) == [
        d(T0 + 5 * DAY, refunded=Decimal("12.00"), refunds=1),
        d(T0 + 5 * DAY, mrr=Decimal(-12), subscriptions=-1),
        d(T0 + 30 * DAY, mrr=Decimal(12), subscriptions=1),
    ]
    # After the period ended, or of a one-time purchase: only the refund.
    assert money.refund_deltas(charge(), T0 + 30 * DAY) == [
        d(T0 + 30 * DAY, refunded=Decimal("12.00"), refunds=1)
    ]
    one_time = charge(period_end=None, months=None)
    assert money.refund_deltas(one_time, T0 + DAY) == [
        d(T0 + DAY, refunded=Decimal("12.00"), refunds=1)
    ]
    assert money.charge_deltas(one_time) == [d(T0, gross=Decimal("12.00"), charges=1)]


def test_deltas_combine_per_row_in_key_order() -> None:
    first = {"gross": Decimal(2), "charges": 1, "refunded": Decimal(1), "refunds": 1}
    first |= {"mrr": Decimal(1), "subscriptions": 1}
    later = {"gross": Decimal(3), "charges": 1, "refunded": Decimal(2), "refunds": 2}
    later |= {"mrr": Decimal(4), "subscriptions": 2}
    rows = money.combined(
        [d(T0 + DAY, gross=Decimal(1), charges=1), d(T0, **first), d(T0 + DAY, **later)]
    )
    summed = later | {"gross": Decimal(4), "charges": 2}
    assert rows == [d(T0, **first), d(T0 + DAY, **summed)]
    assert rows[0].day == date(2026, 3, 1)


def test_days_are_utc_days() -> None:
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC).astimezone(UTC)
    [first, *_] = money.charge_deltas(charge(charged_at=late))
    assert first.day == date(2026, 3, 1)


@pytest.mark.parametrize(
    ("value", "cents", "text"),
    [
        (Decimal("9.990"), False, "9.99"),
        (Decimal("10.000"), False, "10"),
        (Decimal("0"), False, "0"),
        (Decimal("-0.00"), False, "0"),
        (Decimal("43.2900000001"), True, "43.29"),
        (Decimal("4.995"), True, "5"),
        (Decimal("4.994"), True, "4.99"),
    ],
)
def test_amount_text(value, cents, text) -> None:
    assert money.amount_text(value, cents=cents) == text


def test_decimal_text_never_uses_exponents() -> None:
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert decimal_text(Decimal("0.0010")) == "0.001"


def test_a_charge_below_one_unit_counts() -> None:
    [charge] = money.charges_of(state(tx(1, "0.99")))
    assert charge.amount == Decimal("0.99")


def test_only_a_subscription_with_an_end_recurs() -> None:
    endless = tx(1, "9.99", expires_at=None)
    non_renewing = tx(2, "9.99", kind=PurchaseKind.NON_RENEWING)
    found = {
        c.charge_id: (c.period_end, c.months)
        for c in money.charges_of(state(endless, non_renewing))
    }
    assert found == {"t1": (None, None), "t2": (None, None)}


def test_a_play_one_time_product_is_charged_when_bought() -> None:
    product = tx(1, "2.99", kind=PurchaseKind.NON_CONSUMABLE, expires_at=None, order_id="GPA.9..3")
    [charge] = money.charges_of(state(product, store=Store.PLAY_STORE))
    assert charge.charged_at == T0


def test_the_period_before_counts_only_for_the_same_line_item_and_another_order() -> None:
    after = state(
        tx(1, "4.99", expires_at=T0 + 90 * DAY, transaction_id="tok", order_id="GPA.1..1"),
        store=Store.PLAY_STORE,
    )
    estimated = T0 + 60 * DAY
    for old in (
        tx(1, "4.99", expires_at=T0 + 30 * DAY, transaction_id="other", order_id="GPA.1..0"),
        tx(1, "4.99", expires_at=T0 + 30 * DAY, transaction_id="tok", order_id="GPA.1..1"),
        tx(1, "4.99", expires_at=T0 + 30 * DAY, transaction_id="tok", order_id=None),
        tx(1, "4.99", expires_at=None, transaction_id="tok", order_id="GPA.1..0"),
        tx(1, "4.99", expires_at=T0 + 90 * DAY, transaction_id="tok", order_id="GPA.1..0"),
    ):
        before = state(old, store=Store.PLAY_STORE)
        assert [c.charged_at for c in money.charges_of(after, before)] == [estimated], old
    product_changed = state(
        replace_product(tx(1, "4.99", days=30, transaction_id="tok", order_id="GPA.1..0")),
        store=Store.PLAY_STORE,
    )
    assert [c.charged_at for c in money.charges_of(after, product_changed)] == [estimated]


def replace_product(old: TransactionFacts) -> TransactionFacts:
    from dataclasses import replace

    return replace(old, product_id="yearly")


def test_a_revocation_without_a_reason_is_a_refund() -> None:
    found = money.charges_of(state(tx(1, "9.99", revoked_at=T0 + DAY)))
    assert [c.refunded_at for c in found] == [T0 + DAY]


def test_a_purchase_revocation_refunds_only_plays_current_period() -> None:
    older = tx(2, "4.99", start=T0 - 30 * DAY, transaction_id="old", order_id="GPA.0")
    current = tx(1, "4.99", transaction_id="tok", order_id="GPA.1")
    play = money.charges_of(state(current, older, store=Store.PLAY_STORE, revoked_at=T0 + DAY))
    assert {c.charge_id: c.refunded_at for c in play} == {"GPA.1": T0 + DAY, "GPA.0": None}
    apple = money.charges_of(state(current, store=Store.APP_STORE, revoked_at=T0 + DAY))
    assert [c.refunded_at for c in apple] == [None]  # Apple states refunds per transaction
    assert money.charges_of(state(store=Store.PLAY_STORE, revoked_at=T0)) == []


def test_a_play_period_of_no_length_starts_at_the_start() -> None:
    assert money.play_period_start("GPA.1..4", T0, T0) == T0


@pytest.mark.parametrize(
    ("days", "months"),
    [(1, Decimal(12) / 52), (25, Decimal(12) / 52 * 4), (26, Decimal(1))],
)
def test_period_month_boundaries(days, months) -> None:
    assert money.period_months(T0, T0 + days * DAY) == months


def test_mrr_is_the_price_per_month_of_longer_periods() -> None:
    yearly = charge(amount=Decimal("120"), months=Decimal(12), period_end=T0 + 365 * DAY)
    assert money.charge_deltas(yearly)[1] == d(T0, mrr=Decimal(10), subscriptions=1)
    assert money.refund_deltas(yearly, T0 + DAY)[1] == d(
        T0 + DAY, mrr=Decimal(-10), subscriptions=-1
    )


def test_no_mrr_without_months_or_when_refunded_at_once() -> None:
    no_months = charge(months=None)
    assert money.charge_deltas(no_months) == [d(T0, gross=Decimal("12.00"), charges=1)]
    at_once = charge(refunded_at=T0)
    assert money.charge_deltas(at_once) == [
        d(T0, gross=Decimal("12.00"), charges=1),
        d(T0, refunded=Decimal("12.00"), refunds=1),
    ]


def test_mrr_rounds_half_up_and_other_amounts_stay_exact() -> None:
    assert money.amount_text(Decimal("0.125"), cents=True) == "0.13"
    assert money.amount_text(Decimal("0.001")) == "0.001"


def test_a_statement_changes_only_new_and_newly_refunded_charges() -> None:
    first, second = tx(1, "9.99"), tx(2, "9.99", start=T0 + 30 * DAY)
    before = state(first)
    assert [c.charge_id for c in money.changed_charges(state(second, first), before)] == ["t2"]
    assert money.changed_charges(state(first), before) == []
    refunded = tx(1, "9.99", revoked_at=T0 + DAY)
    [changed] = money.changed_charges(state(refunded), before)
    assert (changed.charge_id, changed.refunded_at) == ("t1", T0 + DAY)
    assert money.changed_charges(state(refunded), state(refunded)) == []
    assert [c.charge_id for c in money.changed_charges(state(first), None)] == ["t1"]
