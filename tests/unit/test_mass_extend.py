"""The pure pieces of `receiptd extend` (services/mass_extend.py): which items a run plans,
how items are counted, the arguments' rules, when a deferral shows, the report line."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from entitlements.model import Store
from services.mass_extend import (
    Counts,
    Options,
    apple_environment,
    deferral_shows,
    invalid,
    plan_apple,
    plan_play,
    summary_line,
    tally,
    total,
)
from storage.extend_runs import AppleProduct, PlaySubscription

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ids():
    counter = itertools.count(1)
    return lambda: f"req-{next(counter)}"


def test_apple_one_mass_extension_per_app_environment_and_product() -> None:
    products = [
        AppleProduct("com.example.app", "Production", "monthly"),
        AppleProduct("com.example.app", "Sandbox", "monthly"),
        AppleProduct(None, None, "monthly"),  # stored before apps and environments were kept
        AppleProduct(None, "Production", "monthly"),  # the same as the one above
        AppleProduct("com.example.lite", "Production", "monthly"),
        AppleProduct("com.example.app", "Production", "yearly"),
        AppleProduct("com.example.app", "Xcode", "monthly"),
    ]

    items, left_out = plan_apple(products, ids())

    assert [(i.key, i.environment, i.request_id) for i in items] == [
        ("com.example.app|Production|monthly", "Production", "req-1"),
        ("com.example.app|Sandbox|monthly", "Sandbox", "req-2"),
        ("|Production|monthly", "Production", "req-3"),
        ("com.example.lite|Production|monthly", "Production", "req-4"),
        ("com.example.app|Production|yearly", "Production", "req-5"),
    ]
    assert {i.store for i in items} == {Store.APP_STORE}
    assert left_out == [AppleProduct("com.example.app", "Xcode", "monthly")]
    assert apple_environment("LocalTesting") == "LocalTesting"
    assert plan_apple([], ids()) == ([], [])


def test_play_one_deferral_per_token_with_its_latest_expiry() -> None:
    def row(n: int, purchase_id: str, expires: int | None, user: str = "u-1"):
        expiry = NOW + timedelta(days=expires) if expires is not None else None
        return PlaySubscription(n, purchase_id, "pkg", None, "monthly", user, expiry)

    rows = [
        row(1, "tok-a", 10),
        row(2, "tok-b", None, user="u-2"),
        row(3, "tok-a|addon", 12),  # an add-on line item of tok-a: the same deferral
        row(4, "tok-c", 3),
    ]

    items = plan_play(rows, "run-req")

    assert [(i.key, i.expires_before, i.app_user_id) for i in items] == [
        ("tok-a", NOW + timedelta(days=12), "u-1"),
        ("tok-b", None, "u-2"),
        ("tok-c", NOW + timedelta(days=3), "u-1"),
    ]
    assert {(i.store, i.app, i.product_id, i.request_id) for i in items} == {
        (Store.PLAY_STORE, "pkg", "monthly", "run-req")
    }


def test_counts_per_store() -> None:
    statuses = [
        (Store.APP_STORE, "confirmed"),
        (Store.APP_STORE, "requested"),
        (Store.APP_STORE, "refused"),
        (Store.PLAY_STORE, "pending"),
        (Store.PLAY_STORE, "sending"),
        (Store.PLAY_STORE, "confirmed"),
        (Store.PLAY_STORE, "confirmed"),
        (Store.PLAY_STORE, "failed"),
    ]
    counts = tally(statuses)
    assert counts == {
        Store.APP_STORE: Counts(requested=2, confirmed=1, refused=1),
        Store.PLAY_STORE: Counts(requested=2, confirmed=2, failed=1, pending=2),
    }
    assert total(counts.values()) == Counts(4, 3, 1, 1, 2)
    assert tally([]) == {}
    assert Counts(1, 0, 2, 3, 4).to_json() == {
        "requested": 1,
        "confirmed": 0,
        "refused": 2,
        "failed": 3,
        "pending": 4,
    }


@pytest.mark.parametrize(
    ("days", "reason", "apple", "problem"),
    [
        (7, "service_outage", True, None),
        (90, "other", True, None),
        (91, "other", True, "--days must be from 1 to 90 (Apple extends by at most 90 days"),
        (91, "other", False, None),
        (365, "customer_satisfaction", False, None),
        (366, "other", False, "--days must be from 1 to 365"),
        (0, "other", False, "--days must be from 1 to 365"),
        (7, "because", False, "--reason must be one of customer_satisfaction, service_outage"),
    ],
)
def test_arguments(days: int, reason: str, apple: bool, problem: str | None) -> None:
    got = invalid(Options(days, reason), apple=apple)
    assert (got if problem is None else (got or "")[: len(problem)]) == problem


def test_a_resume_compares_what_was_asked_only() -> None:
    asked = Options(7, "other", "monthly", restart=True, wait=timedelta(0)).arguments()
    assert asked == {"days": 7, "reason": "other", "product": "monthly"}
    assert Options(7, "other", "monthly").arguments() == asked


def test_a_deferral_shows_when_the_expiry_moved_by_the_days_asked() -> None:
    before = NOW + timedelta(days=20)
    assert deferral_shows(before, before + timedelta(days=7), 7)
    assert deferral_shows(before, before + timedelta(days=9), 7)  # the stored one was stale
    assert not deferral_shows(before, before + timedelta(days=6), 7)
    assert not deferral_shows(before, before, 7)
    assert not deferral_shows(before, None, 7)
    assert deferral_shows(None, before, 7)


def test_summary_lines() -> None:
    assert summary_line(Store.PLAY_STORE, Counts(3, 2, 1, 0)) == (
        "extend google: 4 subscriptions; requested 3, confirmed 2, refused 1, failed 0"
    )
    assert summary_line(Store.PLAY_STORE, Counts(1, 0, 0, 0, 2)) == (
        "extend google: 3 subscriptions; requested 1, confirmed 0, refused 0, failed 0, not done 2"
    )
    assert summary_line(
        Store.APP_STORE, Counts(1, 1), apple_extended=118, apple_not_extended=2
    ) == (
        "extend apple: 1 product; requested 1, confirmed 1, refused 0, failed 0; "
        "Apple extended 118 subscriptions (2 failed)"
    )
    assert summary_line(Store.APP_STORE, Counts()) == (
        "extend apple: 0 products; requested 0, confirmed 0, refused 0, failed 0"
    )
