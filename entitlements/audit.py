"""Who acted and what they did, for the audit log (operator actions, transfers, erasures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks, for the audit log: an API key's name or "user:<id>", and the request id."""

    name: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action: who (API key name or "user:<id>"), what, on whom, and why."""

    actor: str
    action: str
    app_user_id: str
    request_id: str | None = None
    details: dict[str, Any] | None = None
