"""Apple non-renewing subscriptions: how long a purchase gives access (`non_renewing_durations`).

Apple signs no expiry for a non-renewing subscription; the app decides how long it lasts. With
a configured ISO 8601 duration the purchase expires at purchase + duration. A product without
one is stored as it is (lifetime, as for a non-consumable) and logged once as a warning, so
that an operator notices the missing setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import structlog

from entitlements.duration import Duration
from entitlements.model import PurchaseKind, StoreEvent

log = structlog.get_logger(__name__)


class NonRenewingTerms:
    """Applies the configured durations to the non-renewing transactions of StoreEvents."""

    def __init__(self, durations: Mapping[str, Duration]) -> None:
        self._durations = dict(durations)
        self._warned: set[str] = set()

    def apply(self, events: Iterable[StoreEvent]) -> list[StoreEvent]:
        """The events with an expiry on each non-renewing transaction that has a duration."""
        return [self._one(event) for event in events]

    def _one(self, event: StoreEvent) -> StoreEvent:
        t = event.transaction
        if t is None or t.kind is not PurchaseKind.NON_RENEWING or t.expires_at is not None:
            return event
        duration = self._durations.get(t.product_id)
        if duration is None or t.purchased_at is None:
            if t.product_id not in self._warned:
                self._warned.add(t.product_id)
                log.warning(
                    "non_renewing_duration_missing",
                    product_id=t.product_id,
                    effect="reads as lifetime; set [apple] non_renewing_durations",
                )
            return event
        expires = duration.after(t.purchased_at)
        return replace(event, transaction=replace(t, expires_at=expires))
