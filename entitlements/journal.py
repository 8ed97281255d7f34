"""The journal's entry: what a store said (or an app submitted) and what became of it. The
journal is the service's source of truth for replay; entries are built in one place,
services/store_messages.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from entitlements.model import Store


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One entry of the journal: a raw store notification, an app submission or a store
    statement read back (RECONCILE), with the verdict of its processing; `reads` is what the
    store API answered while it was processed (JSON-ready, see receipts.recording)."""

    store: Store
    message_id: str
    notification_type: str | None
    subtype: str | None
    signed_at: datetime | None
    purchase_id: str | None
    result: Literal["processed", "ignored", "rejected"]
    reason: str | None
    payload: str
    reads: Mapping[str, Any] | None = None
    app: str | None = None  # the app it is about: bundle id or package name
