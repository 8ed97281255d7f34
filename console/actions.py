"""The operator actions the customer page offers, each confirmed before it runs.

Grants and suspension go through `services.operations` (one transaction, an audit row, a
change-feed event); re-reading a customer's purchases from the stores and replaying its
journal need the store adapters, so the composition root provides them (`StoreActions`,
built by `services.store_actions`) and each leaves an audit row too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from entitlements.audit import Actor


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
    )
}

# Grant durations offered by the form (ISO 8601, as the grants API takes them); "" is life.
DURATIONS = {"P1D": "1 day", "P7D": "7 days", "P1M": "1 month", "P1Y": "1 year", "": "lifetime"}
