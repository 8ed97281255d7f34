"""A customer's timeline: store notifications, change-feed events, operator actions, offers
signed for the app and refund requests merged newest first. Pure: the rows of
`storage.console.timeline_rows` in, display items out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from console.why import STORE_NAMES

# Change-feed event types in words (the others are shown as they are).
EVENT_WORDS = {
    "grant_added": "grant added",
    "grants_ended": "grants ended",
    "suspended": "account suspended",
    "unsuspended": "account unsuspended",
    "alias_merged": "alias merged",
    "transferred": "purchase transferred",
    "corrected": "state corrected by replay",
}


_RANK = {"store": 0, "refund": 0, "operator": 1, "offer": 1, "change": 2}


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the timeline."""

    at: datetime
    kind: str  # "store", "refund", "change", "operator" or "offer"
    title: str
    detail: str
    result: str | None = None
    href: str | None = None  # the journal entry of a store notification


def merge(rows: Mapping[str, Sequence[Mapping[str, Any]]], limit: int) -> list[Item]:
    """Every row as an item, newest first, at most `limit`."""
    items = [_notification(n) for n in rows.get("notifications", ())]
    items += [_event(e) for e in rows.get("events", ())]
    items += [_audit(a) for a in rows.get("audit", ())]
    items += [_offer(o) for o in rows.get("offers", ())]
    items += [_refund_request(r) for r in rows.get("refund_requests", ())]
    # Newest first; at one instant, changes after the operator action or notification
    # that caused them (a stable sort keeps each source's own newest-first order).
    items.sort(key=lambda i: (i.at, _RANK[i.kind]), reverse=True)
    return items[:limit]


def _notification(n: Mapping[str, Any]) -> Item:
    store = STORE_NAMES.get(n["store"], n["store"])
    kind = " / ".join(str(x) for x in (n["notification_type"], n["subtype"]) if x) or "message"
    parts = [f"store time {_t(n['signed_at'])}" if n["signed_at"] else "no store time"]
    if n["reason"]:
        parts.append(str(n["reason"]))
    href = f"/console/journal/{n['id']}" if "id" in n else None
    detail = "; ".join(parts)
    return Item(n["received_at"], "store", f"{store}: {kind}", detail, n["result"], href)


def _event(e: Mapping[str, Any]) -> Item:
    states = [
        f"{name} {'active' if v.get('active') else 'inactive'} ({v.get('status')})"
        for name, v in sorted(e["entitlements"].items())
    ]
    title = EVENT_WORDS.get(e["type"], str(e["type"]).replace("_", " "))
    detail = "now: " + (", ".join(states) if states else "no entitlements")
    return Item(e["created_at"], "change", f"#{e['sequence']} {title}", detail)


def _audit(a: Mapping[str, Any]) -> Item:
    details = dict(a["details"])
    reason = details.pop("reason", None)
    parts = [f"{k}: {v}" for k, v in sorted(details.items()) if v is not None]
    if reason:
        parts.append(f"reason “{reason}”")
    title = f"{str(a['action']).replace('_', ' ')} by {a['actor']}"
    return Item(a["created_at"], "operator", title, "; ".join(parts))


def _offer(o: Mapping[str, Any]) -> Item:
    if o["offer"] == "introductory":
        verdict = "eligible" if o["eligible"] else "not eligible"
        title = f"introductory offer eligibility signed ({verdict})"
    else:
        title = f"offer {o['offer']} signed ({o['format']})"
    return Item(o["created_at"], "offer", title, f"{o['product_id']}; nonce {o['nonce']}")


def _refund_request(r: Mapping[str, Any]) -> Item:
    reason = f"; reason {r['reason']}" if r["reason"] else ""
    detail = f"{r['product_id']}{reason}; answer due {_t(r['deadline'])}"
    href = f"/console/refund-requests/{r['id']}"
    return Item(r["requested_at"], "refund", "refund requested", detail, r["status"], href)


def _t(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")
