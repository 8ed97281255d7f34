"""Real Apple-signed data from ../shared/realdata, read at test time (never copied here): loading,
unverified decoding for expectations, one-character edits of a JWS, and the settings that trust
Apple's real root the way production does."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

# The app the real Sandbox notifications belong to (Session messenger).
BUNDLE_ID = "com.loki-project.loki-messenger"
APP_APPLE_ID = 1470168868
PRODUCTS = ("com.getsession.org.pro_sub", "com.getsession.org.pro_sub_3_months")
ENTITLEMENT = "pro"

# Apple's own library vectors, signed by Apple's *test* CA for bundle com.example / app 1234.
LIBRARY_BUNDLE_ID = "com.example"
LIBRARY_APP_APPLE_ID = 1234


def decode_segment(segment: str) -> dict[str, Any]:
    """The JSON of one base64url JWS segment (header or payload)."""
    decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def unverified_payload(jws: str) -> dict[str, Any]:
    """A JWS payload read WITHOUT verification: only to write the test's expectations."""
    return decode_segment(jws.split(".")[1])


@dataclass(frozen=True)
class RealNotification:
    """One real App Store Server Notification V2 (`jws` is the `signedPayload`)."""

    name: str  # e.g. "session-11" (apple/session-11-*.json)
    jws: str = field(repr=False)

    @property
    def payload(self) -> dict[str, Any]:
        return unverified_payload(self.jws)

    @property
    def uuid(self) -> str:
        return str(self.payload["notificationUUID"])

    @property
    def notification_type(self) -> str:
        return str(self.payload["notificationType"])

    @property
    def signed_ms(self) -> int:
        return int(self.payload["signedDate"])

    @property
    def signed_transaction(self) -> str:
        """The nested signedTransactionInfo: itself a real Apple-signed JWS."""
        return str(self.payload["data"]["signedTransactionInfo"])

    @property
    def transaction(self) -> dict[str, Any]:
        return unverified_payload(self.signed_transaction)

    @property
    def renewal(self) -> dict[str, Any]:
        return unverified_payload(str(self.payload["data"]["signedRenewalInfo"]))


def load_notification(realdata: Path, name: str) -> RealNotification:
    """`apple/<name>-*.json` (or `apple/<name>.json`) of the real-data folder."""
    matches = sorted((realdata / "apple").glob(f"{name}-*.json")) or [
        realdata / "apple" / f"{name}.json"
    ]
    assert len(matches) == 1, f"no unique real-data file for {name}"
    assert matches[0].is_file(), f"no real-data file for {name}"
    return RealNotification(name, json.loads(matches[0].read_text())["jws"])


def session_notifications(realdata: Path) -> list[RealNotification]:
    """The 16 real Sandbox notifications of Session's one original transaction, by signedDate
    (session-00 is Apple's TEST notification, the others are about one subscription)."""
    files = sorted((realdata / "apple").glob("session-*.json"))
    notes = [load_notification(realdata, "-".join(f.stem.split("-")[:2])) for f in files]
    assert len(notes) == 16, [n.name for n in notes]
    return sorted(notes, key=lambda n: n.signed_ms)


def library_vector(realdata: Path, relative: str) -> str:
    """A JWS from Apple's library test resources (`apple-library/<relative>`)."""
    return (realdata / "apple-library" / relative).read_text().strip()


def apple_section(
    root: Path,
    *,
    bundle_id: str = BUNDLE_ID,
    app_apple_id: int = APP_APPLE_ID,
    environments: tuple[str, ...] = ("Sandbox",),
) -> dict[str, Any]:
    """An `[apple]` section as production configures it: real files, no online checks."""
    return {
        "bundle_id": bundle_id,
        "app_apple_id": app_apple_id,
        "environments": list(environments),
        "root_certificates": [str(root)],
        "online_checks": False,
    }


def realdata_config(
    config: dict[str, Any], realdata: Path, environments: tuple[str, ...] = ("Sandbox",)
) -> dict[str, Any]:
    """The test config trusting Apple Root CA - G3 for Session's app, products → `pro`."""
    config["apple"] = apple_section(realdata / "AppleRootCA-G3.cer", environments=environments)
    config["entitlements"] = {ENTITLEMENT: {"products": list(PRODUCTS)}}
    return config


# --- times ---------------------------------------------------------------------------


def instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def just_after(ms: int) -> datetime:
    """The first whole second strictly after an Apple millisecond time."""
    return datetime.fromtimestamp(ms // 1000 + 1, tz=UTC)


def iso(ms: int | None) -> str | None:
    """Contract §3 time: UTC, second precision (truncated), `Z`."""
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- edits ---------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def edit_one_digit(jws: str, key: str) -> tuple[str, int, int]:
    """`jws` with ONE character of its payload segment changed so that the payload is still
    valid base64url and JSON and differs only in one digit of the number under `key`.

    Returns (edited JWS, old value, new value). Header and signature are untouched.
    """
    header, segment, signature = jws.split(".")
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    assert _b64url(raw) == segment, "payload segment is not canonical base64url"
    match = re.search(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*(\d+)', raw)
    assert match is not None, f"no number under {key!r}"
    old_value = int(match.group(1))
    # From the last digit: the subtlest edit (a date moved by milliseconds) comes first.
    for index in reversed(range(match.start(1), match.end(1))):
        for digit in b"0123456789":
            if digit == raw[index] or (index == match.start(1) and digit == ord("0")):
                continue
            candidate = raw[:index] + bytes([digit]) + raw[index + 1 :]
            edited = _b64url(candidate)
            if sum(a != b for a, b in zip(edited, segment, strict=True)) == 1:
                new_value = json.loads(candidate)
                assert isinstance(new_value, dict)
                changed = int(candidate[match.start(1) : match.end(1)])
                return f"{header}.{edited}.{signature}", old_value, changed
    raise AssertionError(f"no one-character edit of {key!r} found")


# --- database (read only: what the service stored) -------------------------------------


async def stored(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """What the service persisted: the journal of store notifications, the app submissions
    (journaled too, under message ids of their own), purchases and the change feed."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id, notification_type, subtype, signed_at, purchase_id, result"
            " FROM store_notifications ORDER BY id"
        )
        purchases = await conn.fetch(
            "SELECT store, purchase_id, app_user_id, status, state::text AS state"
            " FROM purchases ORDER BY purchase_id"
        )
        events = await conn.fetch("SELECT app_user_id, sequence FROM customer_events ORDER BY id")
    finally:
        await conn.close()
    journal = [dict(r) for r in rows if r["notification_type"] != "SUBMISSION"]
    return {
        "journal": journal,
        "submissions": [
            {"purchase_id": r["purchase_id"], "result": r["result"]}
            for r in rows
            if r["notification_type"] == "SUBMISSION"
        ],
        "purchases": [dict(r) for r in purchases],
        "events": [dict(r) for r in events],
    }
