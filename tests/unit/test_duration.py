"""ISO 8601 durations: parsing and calendar arithmetic (non-renewing terms, grants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from entitlements.duration import parse_duration

T = datetime(2027, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1M", datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),  # clamped to the month's end
        ("P3M", datetime(2027, 4, 30, 10, 30, tzinfo=UTC)),
        ("P12M", datetime(2028, 1, 31, 10, 30, tzinfo=UTC)),
        ("P13M", datetime(2028, 2, 29, 10, 30, tzinfo=UTC)),  # leap year
        ("P1Y", datetime(2028, 1, 31, 10, 30, tzinfo=UTC)),
        ("P1Y1M", datetime(2028, 2, 29, 10, 30, tzinfo=UTC)),
        ("P7D", T + timedelta(days=7)),
        ("P2W", T + timedelta(days=14)),
        ("PT12H", T + timedelta(hours=12)),
        ("PT90M", T + timedelta(minutes=90)),
        ("PT30S", T + timedelta(seconds=30)),
        ("P1DT1H", T + timedelta(days=1, hours=1)),
        ("P1MT1H", datetime(2027, 2, 28, 11, 30, tzinfo=UTC)),
        ("p1m", datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),
    ],
)
def test_after(text: str, expected: datetime) -> None:
    assert parse_duration(text).after(T) == expected


def test_months_across_year_end() -> None:
    start = datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_duration("P3M").after(start) == datetime(2027, 2, 25, tzinfo=UTC)
    assert parse_duration("P1M").after(datetime(2026, 12, 31, tzinfo=UTC)) == datetime(
        2027, 1, 31, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "1M", "P1", "P1.5M", "P-1M", "PT1D", "P1H", "P0D", "P1MT", "month"]
)
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_text_is_kept() -> None:
    assert str(parse_duration(" p3m ")) == "P3M"
