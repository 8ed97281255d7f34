"""Who may have an offer (contract §3, "Offers signed for the app"): the pure rules.

A promotional offer (`[offers.<name>]`) is for customers who are `active` (have the
entitlement its products give, now), `lapsed` (had it, have it no more, and it ended at
least `lapsed_days` ago) or `any`. An introductory offer (a free trial, an introductory
price) is for customers who never had one for that entitlement, in either store and any
app. Both read the customer's entitlements as the read API shows them and the periods the
stores stated; the answer comes with its reason, in words an app developer can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from entitlements.model import PeriodType, PurchaseState

OFFER_PERIODS = frozenset({PeriodType.TRIAL, PeriodType.INTRO})


@dataclass(frozen=True, slots=True)
class Verdict:
    """Eligible or not, and why."""

    eligible: bool
    reason: str


def promotional(
    rule: str,
    lapsed_days: int,
    entitlements: Mapping[str, Mapping[str, Any]],
    names: Iterable[str],
    *,
    suspended: bool,
    now: datetime,
) -> Verdict:
    """The verdict of an offer's rule for a customer whose entitlements (the read API's
    objects, by name) are `entitlements`; `names`: the entitlements the offer's products
    give."""
    wanted = sorted(set(names))
    held = [entitlements[n] for n in wanted if n in entitlements]
    what = " or ".join(wanted)
    if suspended:
        return Verdict(False, "the customer is suspended")
    if rule == "any":
        return Verdict(True, "the offer is for any customer")
    active = [e for e in held if e.get("active")]
    if rule == "active":
        if active:
            return Verdict(True, f"the customer has {what} now")
        return Verdict(False, f"the offer is for customers who have {what} now")
    if active:
        return Verdict(False, f"the customer has {what} now; the offer is for lapsed customers")
    if not held:
        return Verdict(False, f"the customer never had {what}; the offer is for lapsed customers")
    ends = [end for end in (_ended(e) for e in held) if end is not None]
    if not ends:
        return Verdict(True, f"the customer's {what} ended")
    lapsed = now - max(ends)
    if lapsed < timedelta(days=lapsed_days):
        days = max(lapsed.days, 0)
        return Verdict(
            False,
            f"the customer's {what} ended {days} day(s) ago; the offer needs {lapsed_days}",
        )
    return Verdict(True, f"the customer's {what} ended at least {lapsed_days} day(s) ago")


def _ended(entitlement: Mapping[str, Any]) -> datetime | None:
    """When an entitlement that gives no access ended: its revocation, else its expiry."""
    for key in ("revoked_at", "expires_at"):
        value = entitlement.get(key)
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value
    return None


def introductory(
    states: Iterable[PurchaseState],
    products: frozenset[str],
    snapshots: Iterable[Mapping[str, Any]] = (),
) -> Verdict:
    """Whether a customer may have an introductory offer on a product of the entitlement
    given by `products`: not after a trial or introductory period of it, in either store.
    `states`: the customer's purchases as stored (their kept transactions); `snapshots`: the
    entitlement as the change feed showed it after each change (a Play trial that became
    a paid period lives on only there)."""
    for state in states:
        for tx in state.transactions:
            if tx.product_id in products and tx.period_type in OFFER_PERIODS:
                return _had(tx.period_type, tx.product_id, state.store.value)
    for shown in snapshots:
        period = shown.get("period_type")
        if period in OFFER_PERIODS:
            return _had(PeriodType(period), str(shown.get("product_id")), str(shown.get("store")))
    return Verdict(True, "no trial or introductory period of this entitlement in either store")


def _had(period: PeriodType, product_id: str, store: str) -> Verdict:
    where = {"app_store": "the App Store", "play_store": "Google Play"}.get(store, store)
    kind = "a free trial" if period is PeriodType.TRIAL else "an introductory price"
    return Verdict(False, f"the customer had {kind} of {product_id} on {where}")
