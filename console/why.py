"""Why a customer has (or lacks) an entitlement, in plain language. Pure: the entitlement as
the read API shows it, the suspension and `now` in; one sentence out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STORE_NAMES = {"app_store": "App Store", "play_store": "Google Play", "promotional": "operator"}


@dataclass(frozen=True, slots=True)
class Suspension:
    """The customer's suspension: when, by whom (API key name) and why."""

    at: datetime | None
    actor: str | None
    reason: str | None


def when(value: str | datetime | None) -> str:
    """A time as operators read it: `2026-11-25 10:00 UTC`."""
    if value is None:
        return "an unknown time"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def explain(e: Mapping[str, Any], suspension: Suspension | None) -> str:
    """The reason `e` (an entitlement of the customer object) is active or not."""
    store = STORE_NAMES.get(str(e.get("store")), str(e.get("store")))
    underneath = _store_reason(e, store)
    if suspension is not None:
        by = f" by operator {suspension.actor}" if suspension.actor else " by an operator"
        why = f" with reason “{suspension.reason}”" if suspension.reason else " (no reason given)"
        return (
            f"No access: the account was suspended{by} at {when(suspension.at)}{why}. "
            f"Without the suspension: {underneath[0].lower()}{underneath[1:]}"
        )
    return underneath


def _store_reason(e: Mapping[str, Any], store: str) -> str:
    status = e.get("status")
    if e.get("store") == "promotional":
        return _grant_reason(e)
    if status == "active" and e.get("active"):
        return _active_reason(e, store)
    if status == "grace_period":
        issue = (
            f" since {when(e['billing_issue_detected_at'])}"
            if e.get("billing_issue_detected_at")
            else ""
        )
        if e.get("active"):
            return (
                f"Access: the renewal payment is failing{issue}; {store} keeps access in its "
                f"grace period until {when(e.get('grace_period_expires_at'))}."
            )
        return (
            f"No access: the renewal payment failed{issue} and the grace period ended at "
            f"{when(e.get('grace_period_expires_at'))}."
        )
    if status == "billing_retry":
        return (
            f"No access: the renewal payment failed at {when(e.get('billing_issue_detected_at'))}"
            f"; {store} is retrying the charge (billing retry, no grace period)."
        )
    if status == "on_hold":
        return (
            f"No access: the account is on hold at {store} after failed renewal payments "
            f"(since {when(e.get('billing_issue_detected_at'))})."
        )
    if status == "paused":
        return f"No access: the subscriber paused the subscription at {store}."
    if status == "revoked":
        return f"No access: refunded or revoked by {store} at {when(e.get('revoked_at'))}."
    if status == "expired":
        cancelled = e.get("unsubscribe_detected_at")
        cause = f" (auto-renew was turned off at {when(cancelled)})" if cancelled else ""
        return f"No access: the subscription expired at {when(e.get('expires_at'))}{cause}."
    return f"No access: status {status}."


def _active_reason(e: Mapping[str, Any], store: str) -> str:
    expires = e.get("expires_at")
    if expires is None:
        return f"Access: a lifetime purchase at {store}."
    period = {"trial": "free trial", "intro": "introductory offer"}.get(
        str(e.get("period_type")), "paid period"
    )
    if e.get("will_renew"):
        return f"Access: {period} until {when(expires)}; {store} renews it automatically."
    cancelled = e.get("unsubscribe_detected_at")
    off = f" at {when(cancelled)}" if cancelled else ""
    return (
        f"Access: {period} until {when(expires)}; auto-renew was turned off{off}, so it ends then."
    )


def _grant_reason(e: Mapping[str, Any]) -> str:
    status = e.get("status")
    if status == "revoked":
        return f"No access: the operator's grant was ended at {when(e.get('revoked_at'))}."
    if status == "expired":
        return f"No access: the operator's grant ran out at {when(e.get('expires_at'))}."
    if e.get("expires_at") is None:
        return "Access: granted by an operator for life."
    if not e.get("active"):
        return f"No access yet: an operator's grant starts at {when(e.get('purchased_at'))}."
    return f"Access: granted by an operator until {when(e.get('expires_at'))}."
