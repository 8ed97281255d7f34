"""The pure rules of offers (entitlements/offers.py): promotional eligibility by rule and
introductory eligibility from both stores' periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from entitlements import offers
from entitlements.model import PeriodType, PurchaseKind, PurchaseState, Store, TransactionFacts

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def shown(active: bool, ended_days_ago: float | None = None, revoked_days_ago=None) -> dict:
    def at(days):
        return None if days is None else (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {"active": active, "expires_at": at(ended_days_ago), "revoked_at": at(revoked_days_ago)}


def verdict(rule: str, entitlements: dict, *, lapsed_days: int = 30, suspended=False):
    return offers.promotional(
        rule, lapsed_days, entitlements, {"premium"}, suspended=suspended, now=NOW
    )


@pytest.mark.parametrize(
    ("rule", "entitlements", "eligible", "reason"),
    [
        ("any", {}, True, "the offer is for any customer"),
        ("active", {"premium": shown(True, -3)}, True, "the customer has premium now"),
        (
            "active",
            {"premium": shown(False, 3)},
            False,
            "the offer is for customers who have premium now",
        ),
        ("active", {}, False, "the offer is for customers who have premium now"),
        ("lapsed", {}, False, "the customer never had premium; the offer is for lapsed customers"),
        (
            "lapsed",
            {"other": shown(False, 90)},
            False,
            "the customer never had premium; the offer is for lapsed customers",
        ),
        (
            "lapsed",
            {"premium": shown(True, -3)},
            False,
            "the customer has premium now; the offer is for lapsed customers",
        ),
        (
            "lapsed",
            {"premium": shown(False, 29.5)},
            False,
            "the customer's premium ended 29 day(s) ago; the offer needs 30",
        ),
        (
            "lapsed",
            {"premium": shown(False, 0.5)},
            False,
            "the customer's premium ended 0 day(s) ago; the offer needs 30",
        ),
        (
            "lapsed",
            {"premium": shown(False, 30)},
            True,
            "the customer's premium ended at least 30 day(s) ago",
        ),
        (
            "lapsed",
            {"premium": shown(False, 90, revoked_days_ago=2)},
            False,
            "the customer's premium ended 2 day(s) ago; the offer needs 30",
        ),
        ("lapsed", {"premium": shown(False)}, True, "the customer's premium ended"),
    ],
)
def test_promotional_rules(rule, entitlements, eligible, reason) -> None:
    assert verdict(rule, entitlements) == offers.Verdict(eligible, reason)


def test_a_suspended_customer_gets_no_offer() -> None:
    found = verdict("any", {"premium": shown(True)}, suspended=True)
    assert found == offers.Verdict(False, "the customer is suspended")


def test_the_latest_end_of_several_entitlements_counts() -> None:
    both = {"premium": shown(False, 40), "pro": shown(False, 10)}
    found = offers.promotional("lapsed", 30, both, {"premium", "pro"}, suspended=False, now=NOW)
    assert found == offers.Verdict(
        False, "the customer's premium or pro ended 10 day(s) ago; the offer needs 30"
    )


def test_end_times_as_datetimes_count_too() -> None:
    found = offers.promotional(
        "lapsed", 30, {"premium": {"active": False, "expires_at": NOW}}, {"premium"},
        suspended=False, now=NOW,
    )  # fmt: skip
    assert found.eligible is False


def state(store: Store, *periods: tuple[str, PeriodType]) -> PurchaseState:
    txs = tuple(
        TransactionFacts(
            transaction_id=f"t{i}", product_id=product, kind=PurchaseKind.SUBSCRIPTION,
            purchased_at=NOW, signed_at=NOW, period_type=period,
        )
        for i, (product, period) in enumerate(periods)
    )  # fmt: skip
    return PurchaseState(store, "p", False, NOW, transactions=txs)


PRODUCTS = frozenset({"monthly", "premium_monthly"})


def test_introductory_without_history_is_eligible() -> None:
    found = offers.introductory([state(Store.APP_STORE, ("monthly", PeriodType.NORMAL))], PRODUCTS)
    assert found == offers.Verdict(
        True, "no trial or introductory period of this entitlement in either store"
    )


@pytest.mark.parametrize(
    ("store", "period", "reason"),
    [
        (
            Store.APP_STORE,
            PeriodType.TRIAL,
            "the customer had a free trial of monthly on the App Store",
        ),
        (
            Store.PLAY_STORE,
            PeriodType.INTRO,
            "the customer had an introductory price of monthly on Google Play",
        ),
    ],
)
def test_an_earlier_offer_period_in_either_store_ends_eligibility(store, period, reason) -> None:
    found = offers.introductory([state(store, ("monthly", period))], PRODUCTS)
    assert found == offers.Verdict(False, reason)


def test_offer_periods_of_other_entitlements_and_promotions_do_not_count() -> None:
    states = [
        state(Store.APP_STORE, ("other.product", PeriodType.TRIAL)),
        state(Store.APP_STORE, ("monthly", PeriodType.PROMOTIONAL)),
    ]
    assert offers.introductory(states, PRODUCTS).eligible is True


def test_a_trial_seen_only_in_the_change_feed_counts() -> None:
    snapshots = [
        {"period_type": "normal"},
        {"period_type": "trial", "product_id": "premium_monthly", "store": "play_store"},
    ]
    found = offers.introductory([], PRODUCTS, snapshots)
    assert found == offers.Verdict(
        False, "the customer had a free trial of premium_monthly on Google Play"
    )
    intro = offers.introductory(
        [], PRODUCTS, [{"period_type": "intro", "product_id": "x", "store": "app_store"}]
    )
    assert intro.reason == "the customer had an introductory price of x on the App Store"
    unknown = offers.introductory(
        [], PRODUCTS, [{"period_type": "trial", "product_id": "x", "store": "web"}]
    )
    assert unknown.reason == "the customer had a free trial of x on web"
