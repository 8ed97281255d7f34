"""Promotional grants as the contract asks for them: how long one lasts. Pure.

    {"duration": "P1M"}                 from now, an ISO 8601 duration (calendar months)
    {"expires_at": "2027-01-01T00:00:00Z"}  until then (must be in the future)
    {}                                  lifetime
An optional "reason" (text) goes to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from entitlements.duration import parse_duration
from entitlements.errors import GrantRejected, InvalidRequest

_FIELDS = frozenset({"duration", "expires_at", "reason"})
MAX_REASON = 500


def grant_expiry(body: Mapping[str, Any], now: datetime) -> datetime | None:
    """When a grant given `now` ends (None: lifetime). InvalidRequest (400) for a body the
    contract does not describe; GrantRejected (422) for an end that is not in the future."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    duration, expires_at = body.get("duration"), body.get("expires_at")
    if duration is not None and expires_at is not None:
        raise InvalidRequest("give duration or expires_at, not both")
    if duration is not None:
        if not isinstance(duration, str):
            raise InvalidRequest("duration must be an ISO 8601 duration such as P1M")
        try:
            return parse_duration(duration).after(now)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    if expires_at is not None:
        end = _instant(expires_at)
        if end <= now:
            raise GrantRejected("expires_at is not in the future")
        return end
    return None


def reason_of(body: Mapping[str, Any]) -> str | None:
    """The optional operator's reason (400 when it is not short text)."""
    reason = body.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason must be text of at most {MAX_REASON} characters")
    return reason


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidRequest("expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            "expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone (Z or an offset)")
    return parsed.astimezone(UTC)
