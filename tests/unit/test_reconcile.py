"""Reconciliation's pure parts: which purchases a statement changes for clients, a run's
position and default window, a voided purchase as Play lists it, and the rate limiter."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from entitlements.model import EventKind, Status, Store
from entitlements.reconcile import Counts, Position, corrections, default_since
from entitlements.state import apply
from receipts.google.translate import voided_purchase_event
from receipts.rate_limit import RateLimiter
from simulators.play_purchases import voided_purchase
from tests.factories import subscription_event

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
KEY = (Store.APP_STORE, "otx-1")


def test_corrections_are_the_purchases_whose_view_changes() -> None:
    bought = subscription_event(purchased_at=NOW, expires_at=NOW + timedelta(days=30))
    stored = {KEY: apply(None, bought)}

    assert corrections(stored, [bought]) == []  # already applied: nothing shows
    newer = replace(bought, occurred_at=NOW + timedelta(hours=1))
    assert corrections(stored, [newer]) == []  # a newer copy of the same: still nothing
    expired = replace(newer, status=Status.EXPIRED, kind=EventKind.EXPIRED)
    assert corrections(stored, [expired]) == [KEY]
    other = replace(bought, purchase_id="otx-2")
    assert corrections(stored, [other]) == [(Store.APP_STORE, "otx-2")]  # not stored yet
    revoked = replace(bought, revoked_at=NOW + timedelta(days=1))
    assert corrections(stored, [revoked]) == [KEY]
    assert corrections({KEY: apply(stored[KEY], revoked)}, [revoked]) == []
    assert corrections(stored, []) == []


def test_counts_position_and_default_window() -> None:
    assert Counts().plus(checked=2, missing=1) == Counts(2, 1, 0, 0)
    position = Position("list:Production", "token", 7)
    assert Position.from_json(position.to_json()) == position
    assert Position.from_json(None) == Position()
    assert Position.from_json({"step": 3, "cursor": None, "done": -1}) == Position()
    assert default_since(None) is None
    assert default_since(NOW) == NOW - timedelta(days=1)


def test_a_listed_voided_purchase_revokes_at_its_void_time_unless_partial() -> None:
    voided_at = NOW - timedelta(hours=5)
    item = voided_purchase("tok-1", "GPA.1", voided_at)

    event = voided_purchase_event(item, "com.example.app", NOW)

    assert event is not None
    assert (event.purchase_id, event.revoked_at, event.occurred_at) == ("tok-1", voided_at, NOW)
    assert (event.kind, event.status, event.transaction) == (EventKind.REFUNDED, None, None)
    assert event.details == {
        "package_name": "com.example.app",
        "order_id": "GPA.1",
        "voided_source": 0,
        "voided_reason": 1,
    }
    partial = voided_purchase("tok-1", "GPA.1", voided_at, voidedQuantity=1)
    assert voided_purchase_event(partial, "com.example.app", NOW) is None
    for broken in ({"purchaseToken": ""}, {"voidedTimeMillis": "soon"}):
        assert voided_purchase_event(item | broken, "com.example.app", NOW) is None


async def test_the_rate_limiter_spaces_requests_evenly() -> None:
    now = [0.0]
    sent: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def request() -> None:
        await limiter.wait()
        sent.append(round(now[0], 6))

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    await asyncio.gather(*(request() for _ in range(3)))  # concurrent: spaced too
    assert sent == [0.0, 0.25, 0.5]
    now[0] = 10.0  # idle for long: no burst credit builds up
    await request()
    await request()
    assert sent[3:] == [10.0, 10.25]
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
