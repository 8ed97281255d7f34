"""Which line item of a SubscriptionPurchaseV2 is the base plan: Google's times only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receipts.google.translate import subscription_events
from simulators.play_purchases import subscription_purchase

STORE_NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("read_skew", [timedelta(days=-800), timedelta(0), timedelta(days=800)])
def test_item_without_expiry_is_never_the_base_plan(read_skew: timedelta) -> None:
    """A pending add-on has no expiryTime; wherever this host's clock is, the item with
    Google's latest expiry stays the base plan (keyed by the token)."""
    pending_add_on = {"productId": "extra_storage", "autoRenewingPlan": {}}
    doc = subscription_purchase("active", now=STORE_NOW, extra_line_items=[pending_add_on])
    events = subscription_events(4, "tok", doc, "com.example.app", STORE_NOW + read_skew)
    assert [e.purchase_id for e in events] == ["tok", "tok|extra_storage"]
    assert events[0].transaction is not None
    assert events[0].transaction.product_id == "premium_monthly"
