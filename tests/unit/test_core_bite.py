"""Core details the mutation run (`make mutation`) found untested since its last measure:
a grant ending exactly now is no future change, and a voided purchase listed by Google Play is
a Play Store event of production data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from entitlements.access import CustomerRecord, Grant, next_change
from entitlements.model import Store
from receipts.google.translate import voided_purchase_event
from simulators.play_purchases import voided_purchase

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)  # a fixed instant: nothing here reads a clock


def test_a_grant_ending_now_is_no_future_change() -> None:
    for grant in (
        Grant(1, "premium", starts_at=NOW - timedelta(days=1), expires_at=NOW, ended_at=None),
        Grant(2, "premium", starts_at=NOW - timedelta(days=1), expires_at=None, ended_at=NOW),
        Grant(3, "premium", starts_at=NOW, expires_at=None, ended_at=None),
    ):
        record = CustomerRecord(app_user_id="u-1", suspended=False, purchases=(), grants=(grant,))
        assert next_change(record, NOW) is None, grant


def test_a_listed_voided_purchase_is_a_production_play_store_event() -> None:
    item = voided_purchase("tok-1", "GPA.1", NOW - timedelta(hours=5))
    event = voided_purchase_event(item, "com.example.app", NOW)
    assert event is not None
    assert event.store is Store.PLAY_STORE
    assert event.is_sandbox is False
