"""The operator actions the customer page offers, each confirmed before it runs.

Grants and suspension go through `services.operations` (one transaction, an audit row, a
change-feed event); re-reading a customer's purchases from the stores and replaying its
journal need the store adapters, so the composition root provides them (`StoreActions`,
built by `services.store_actions`) and each leaves an audit row too. Extending subscriptions
and revoking a Google Play purchase ask the stores themselves (`services.support_actions`),
which keep each store's answer and write the audit row; the customer's access changes only
when the store confirms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from console.why import STORE_NAMES
from entitlements.access import effective_status
from entitlements.audit import Actor
from entitlements.model import PurchaseKind, PurchaseView, Status, Store
from services.support_actions import REASONS


class StoreActions(Protocol):
    """Store work on one customer, summed up in a sentence for the operator."""

    async def reread(self, app_user_id: str, actor: Actor) -> str:
        """Ask the stores for the current state of each of the customer's purchases."""

    async def replay(self, app_user_id: str, actor: Actor) -> str:
        """Re-derive the customer's purchases from the journal and fix any difference."""


@dataclass(frozen=True, slots=True)
class Action:
    """One action: its label, what the confirmation says it does, and its form fields."""

    name: str
    label: str
    effect: str
    entitlement: bool = False  # asks which entitlement
    duration: bool = False  # asks for how long
    reason: bool = True  # asks why (kept in the audit log)
    days: bool = False  # asks by how many days, with one of the stores' reasons (STORE_REASONS)
    refund: bool = False  # asks which Google Play purchase to revoke, with which refund

    @property
    def fields(self) -> tuple[str, ...]:
        """The form fields the action carries to its confirmation and back."""
        fields: tuple[str, ...] = ("entitlement", "duration", "reason")
        if self.days:
            fields += ("days",)
        if self.refund:
            fields += ("purchase", "refund")
        return fields


ACTIONS = {
    a.name: a
    for a in (
        Action(
            "grant",
            "Grant",
            "Give the entitlement from now on for the chosen duration (store purchases untouched).",
            entitlement=True,
            duration=True,
        ),
        Action(
            "end_grants",
            "End grants",
            "End every running operator grant of the entitlement now (store purchases untouched).",
            entitlement=True,
        ),
        Action(
            "suspend",
            "Suspend",
            "Every entitlement of the customer reads inactive until unsuspended.",
        ),
        Action("unsuspend", "Unsuspend", "Entitlements read what the stores say again."),
        Action(
            "reread",
            "Re-read from the store",
            "Ask the stores for the current state of each of the customer's purchases and "
            "apply what changed.",
            reason=False,
        ),
        Action(
            "replay",
            "Replay this customer",
            "Re-derive the customer's purchases from the journal of store notifications and "
            "fix any stored state that differs.",
            reason=False,
        ),
        Action(
            "extend",
            "Extend subscriptions",
            "Ask the stores to extend every renewing subscription of the customer by the "
            "chosen number of days (App Store: a renewal date extension, at most 90 days and "
            "twice a year; Google Play: a deferral of up to 365 days). The customer's access "
            "changes only when the store confirms the new date.",
            reason=False,
            days=True,
        ),
        Action(
            "revoke",
            "Revoke with refund",
            "Ask Google Play to revoke the purchase and refund the customer. Access ends only "
            "when Google Play confirms it. Only Apple refunds App Store purchases.",
            reason=False,
            refund=True,
        ),
    )
}

# Grant durations offered by the form (ISO 8601, as the grants API takes them); "" is life.
DURATIONS = {"P1D": "1 day", "P7D": "7 days", "P1M": "1 month", "P1Y": "1 year", "": "lifetime"}

# The stores' reasons for an extension (services.support_actions.REASONS), in words.
STORE_REASONS = {r: r.replace("_", " ").capitalize() for r in REASONS}
# The refunds a revocation may carry (Google Play revokes nothing without one).
REFUNDS = {"full": "Full refund", "prorated": "Prorated refund (the unused time)"}
MAX_DAYS = 365  # Google Play's longest deferral; the service checks each store's own limit
_RENEWING = (Status.ACTIVE, Status.GRACE_PERIOD)
_ENDED = (Status.EXPIRED, Status.REVOKED, Status.PENDING)


def extendable(purchases: Iterable[PurchaseView]) -> list[PurchaseView]:
    """The subscriptions an extension asks the stores about: renewing (active or in grace)
    and not replaced by another."""
    return [
        p
        for p in purchases
        if p.kind is PurchaseKind.SUBSCRIPTION and p.status in _RENEWING and not p.superseded
    ]


def revocable(purchases: Iterable[PurchaseView], now: datetime) -> list[PurchaseView]:
    """The purchases the console offers to revoke: Google Play's (the App Store cannot
    revoke), not replaced, and neither ended nor revoked at `now` (Play refuses those)."""
    return [
        p
        for p in purchases
        if p.store is Store.PLAY_STORE
        and not p.superseded
        and p.revoked_at is None
        and effective_status(p.status, p.expires_at, now) not in _ENDED
    ]


def answers(answered: Sequence[Mapping[str, Any]]) -> str:
    """What each store answered, for the operator: `App Store: requested; Google Play:
    refused (its detail)`."""
    said = []
    for a in answered:
        store = STORE_NAMES.get(str(a["store"]), str(a["store"]))
        detail = f" ({a['detail']})" if a["status"] != "requested" and a["detail"] else ""
        said.append(f"{store}: {a['status']}{detail}")
    return "; ".join(said) or "no store was asked"
