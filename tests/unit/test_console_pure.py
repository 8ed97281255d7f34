"""The console's pure parts: the plain-language why of each status, the timeline's order, the
payload decoder and the SVG charts (no event loop, no server)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from console import charts, payload, timeline
from console.why import Suspension, explain

T = "2026-11-25T10:00:00Z"
NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)


def ent(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "active": False,
        "status": "active",
        "period_type": "normal",
        "will_renew": True,
        "expires_at": T,
        "grace_period_expires_at": None,
        "store": "app_store",
        "purchased_at": T,
        "unsubscribe_detected_at": None,
        "billing_issue_detected_at": None,
        "revoked_at": None,
    }
    return base | fields


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"active": True}, "Access: paid period until 2026-11-25 10:00 UTC; App Store renews"),
        (
            {"active": True, "period_type": "trial", "will_renew": False},
            "Access: free trial until 2026-11-25 10:00 UTC; auto-renew was turned off",
        ),
        ({"active": True, "expires_at": None}, "Access: a lifetime purchase at App Store."),
        (
            {"status": "revoked", "revoked_at": T, "store": "play_store"},
            "No access: refunded or revoked by Google Play at 2026-11-25 10:00 UTC.",
        ),
        (
            {"status": "grace_period", "active": True, "grace_period_expires_at": T},
            "Access: the renewal payment is failing; App Store keeps access in its grace period",
        ),
        (
            {"status": "grace_period", "grace_period_expires_at": T},
            "No access: the renewal payment failed and the grace period ended at",
        ),
        ({"status": "billing_retry"}, "No access: the renewal payment failed at an unknown time"),
        ({"status": "on_hold"}, "No access: the account is on hold at App Store"),
        ({"status": "paused"}, "No access: the subscriber paused the subscription"),
        (
            {"status": "expired", "unsubscribe_detected_at": T},
            "No access: the subscription expired at 2026-11-25 10:00 UTC (auto-renew was turned",
        ),
        ({"store": "promotional", "active": True}, "Access: granted by an operator until"),
        ({"store": "promotional", "status": "revoked", "revoked_at": T}, "No access: the operator"),
        ({"store": "promotional", "status": "expired"}, "No access: the operator's grant ran out"),
    ],
)
def test_every_status_has_its_reason(fields: dict[str, object], expected: str) -> None:
    assert explain(ent(**fields), None).startswith(expected)


def test_a_suspension_comes_first_and_keeps_the_reason_underneath() -> None:
    suspension = Suspension(NOW, "admin", "fraud")
    text = explain(ent(active=True), suspension)
    assert text.startswith(
        "No access: the account was suspended by operator admin at 2026-11-25 10:00 UTC "
        "with reason “fraud”. Without the suspension: access: paid period"
    )
    assert "(no reason given)" in explain(ent(), Suspension(NOW, None, None))


def test_the_timeline_is_newest_first_and_changes_follow_their_cause() -> None:
    later = NOW + timedelta(minutes=1)
    rows = {
        "notifications": [
            {
                "store": "app_store",
                "notification_type": "DID_RENEW",
                "subtype": None,
                "signed_at": NOW,
                "received_at": NOW,
                "result": "processed",
                "reason": None,
            }
        ],
        "events": [
            {"sequence": 2, "type": "suspended", "created_at": later, "entitlements": {}},
            {"sequence": 1, "type": "renewed", "created_at": NOW, "entitlements": {}},
        ],
        "audit": [{"actor": "admin", "action": "suspend", "created_at": later, "details": {}}],
    }
    titles = [item.title for item in timeline.merge(rows, 10)]
    assert titles == [
        "#2 account suspended",
        "suspend by admin",
        "#1 renewed",
        "App Store: DID_RENEW",
    ]


def _b64url(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def test_payloads_are_opened_where_they_hold_json() -> None:
    inner = _b64url({"kind": "inner"})
    jws = f"{_b64url({'alg': 'ES256'})}.{_b64url({'data': {'signed': inner}})}.c2ln"
    pushed = base64.b64encode(json.dumps({"version": "1.0"}).encode()).decode()
    document = json.dumps({"signed": jws, "message": {"data": pushed}})
    decoded = payload.decode(document)
    assert decoded["signed"]["(signed) header"] == {"alg": "ES256"}
    assert decoded["message"]["data"] == {"(base64) decoded": {"version": "1.0"}}
    assert payload.decode("not json") == "not json"


def test_charts_are_svg_with_a_title_and_escaped_labels() -> None:
    days = [NOW - timedelta(days=2 - i) for i in range(3)]
    svg = str(charts.line_chart("A & B", days, {"<x>": [0, 1, 2]}))
    assert svg.startswith("<svg")
    assert "<title" in svg
    assert "A &amp; B" in svg
    assert "&lt;x&gt;" in svg
    assert "<x>" not in svg
    bars = str(charts.line_chart("bars", days, {"a": [1, 0, 3]}, bars=True))
    assert bars.count("<rect") == 3 + 1  # three bars and the legend's swatch
