"""Refund requests: a customer asked the store for a refund and the store asks us first.

Apple's CONSUMPTION_REQUEST gives the developer 12 hours to send consumption information
and a refund preference (contract §3, "Refund requests and store actions"). This module is
the pure part: the request a statement opens, what is sent for it (or why nothing is), when
a failed send is tried again, and which store decision closes it. Storage and the sending
loop are services/refund_requests.py.

Statuses: `pending` (waiting to be sent), `sent`, `failed` (not sent before the deadline),
`skipped` (the customer has not consented: nothing about them is sent), then `refunded` or
`declined` once the store's decision arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from entitlements.model import EventKind, PurchaseKind, StoreEvent

Status = Literal["pending", "sent", "failed", "skipped", "refunded", "declined"]
STATUSES: tuple[Status, ...] = ("pending", "sent", "failed", "skipped", "refunded", "declined")
OPEN: tuple[Status, ...] = ("pending", "sent", "failed", "skipped")  # no decision yet
PREFERENCES = ("decline", "grant_full", "grant_prorated", "none")

ANSWER_WINDOW = timedelta(hours=12)  # Apple: consumption information within 12 hours
# A send is not started closer to the deadline than this: it must reach Apple in time.
SEND_MARGIN = timedelta(minutes=5)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)

# What Apple calls each preference (Send Consumption Information v2, refundPreference).
_APPLE_PREFERENCE = {
    "decline": "DECLINE",
    "grant_full": "GRANT_FULL",
    "grant_prorated": "GRANT_PRORATED",
}
# The store's decision on a refund, by the kind of its statement.
DECISIONS: Mapping[EventKind, Status] = {
    EventKind.REFUNDED: "refunded",
    EventKind.REFUND_DECLINED: "declined",
}


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A refund request as opened by the store's statement."""

    purchase_id: str
    transaction_id: str
    product_id: str
    notification_id: str  # the store's id of the request (a repeat gets a new one)
    requested_at: datetime  # the store's time of the request
    deadline: datetime
    environment: str
    reason: str | None
    app: str | None
    consumption_percentage: int | None  # milliunits of the period used, when knowable


def opened_by(event: StoreEvent) -> RefundRequest | None:
    """The refund request a store statement opens (Apple's CONSUMPTION_REQUEST), or None."""
    tx = event.transaction
    notification_id = event.details.get("notification_uuid")
    if event.kind is not EventKind.CONSUMPTION_REQUEST or tx is None or not notification_id:
        return None
    return RefundRequest(
        purchase_id=event.purchase_id,
        transaction_id=tx.transaction_id,
        product_id=tx.product_id,
        notification_id=str(notification_id),
        requested_at=event.occurred_at,
        deadline=event.occurred_at + ANSWER_WINDOW,
        environment=event.environment or ("Sandbox" if event.is_sandbox else "Production"),
        reason=event.details.get("consumption_request_reason"),
        app=event.app,
        consumption_percentage=consumption_percentage(
            tx.kind, tx.purchased_at, tx.expires_at, event.occurred_at
        ),
    )


def consumption_percentage(
    kind: PurchaseKind, start: datetime | None, end: datetime | None, at: datetime
) -> int | None:
    """How much of a subscription period was used at `at`, in milliunits (0 to 100000): the
    share of the period already passed. None where it cannot be known (no period)."""
    if kind is not PurchaseKind.SUBSCRIPTION or start is None or end is None or end <= start:
        return None
    used = (at - start) / (end - start)
    return max(0, min(100_000, round(used * 100_000)))


def first_attempt(received_at: datetime, deadline: datetime, delay: timedelta) -> datetime:
    """When the first send may start: after the operator's `delay`, but in time."""
    return min(received_at + delay, deadline - SEND_MARGIN)


def retry_after(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed send: 30 s doubling, at most 30 minutes."""
    wait: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(wait, MAX_RETRY)


def may_send(now: datetime, deadline: datetime) -> bool:
    """Whether a send started now can still reach the store before the deadline."""
    return now < deadline - SEND_MARGIN


def consumption_body(
    *,
    consented: bool,
    sample_content_provided: bool,
    preference: str,
    consumption_percentage: int | None,
) -> dict[str, Any] | None:
    """Apple's Send Consumption Information body (v2), or None when the customer has not
    consented (nothing about them is sent). `preference` "none" states no preference."""
    if not consented:
        return None
    body: dict[str, Any] = {
        "customerConsented": True,
        "sampleContentProvided": sample_content_provided,
        "deliveryStatus": "DELIVERED",
    }
    if consumption_percentage is not None:
        body["consumptionPercentage"] = consumption_percentage
    if preference in _APPLE_PREFERENCE:
        body["refundPreference"] = _APPLE_PREFERENCE[preference]
    return body
