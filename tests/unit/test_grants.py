"""How long a promotional grant lasts, from the contract's request body. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from entitlements.errors import GrantRejected, InvalidRequest
from entitlements.grants import MAX_REASON, grant_expiry, reason_of

NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "ends"),
    [
        ({}, None),
        ({"reason": "outage"}, None),
        ({"duration": "P1M"}, datetime(2027, 2, 28, 12, 0, tzinfo=UTC)),
        ({"duration": "PT1H"}, NOW + timedelta(hours=1)),
        ({"expires_at": "2027-02-01T00:00:00Z"}, datetime(2027, 2, 1, tzinfo=UTC)),
        ({"expires_at": "2027-02-01T01:00:00+01:00"}, datetime(2027, 2, 1, tzinfo=UTC)),
        ({"expires_at": "2027-01-31T12:00:01Z"}, NOW + timedelta(seconds=1)),
    ],
)
def test_grant_expiry(body, ends) -> None:
    assert grant_expiry(body, NOW) == ends


@pytest.mark.parametrize(
    "body",
    [
        {"duration": "1 month"},
        {"duration": 30},
        {"duration": "P0D"},
        {"expires_at": "soon"},
        {"expires_at": 1_800_000_000},
        {"expires_at": "2027-02-01T00:00:00"},  # no zone
        {"duration": "P1M", "expires_at": "2027-02-01T00:00:00Z"},
        {"until": "2027-02-01T00:00:00Z"},
    ],
)
def test_malformed_bodies_are_400(body) -> None:
    with pytest.raises(InvalidRequest):
        grant_expiry(body, NOW)


@pytest.mark.parametrize("when", ["2027-01-31T12:00:00Z", "2020-01-01T00:00:00Z"])
def test_an_end_that_is_not_in_the_future_is_422(when) -> None:
    with pytest.raises(GrantRejected):
        grant_expiry({"expires_at": when}, NOW)


def test_reason() -> None:
    assert reason_of({}) is None
    assert reason_of({"reason": "goodwill"}) == "goodwill"
    assert reason_of({"reason": "x" * MAX_REASON}) == "x" * MAX_REASON
    for bad in ({"reason": "x" * (MAX_REASON + 1)}, {"reason": 7}):
        with pytest.raises(InvalidRequest):
            reason_of(bad)
