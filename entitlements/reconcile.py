"""Reconciliation's pure core (`receiptd reconcile`; `services.reconcile` is the shell): what a
run counts, where it stands, and which purchases a store statement changes for clients.

    Counts          checked, missing, corrected, failed
    Position        the last item a run completed: its step, the cursor of its page, how
                    many items of that page were done
    corrections     the purchases whose view (what clients read) a batch of events changes,
                    folded exactly as ingest folds them
    default_since   the window when none is asked: from a day before the end of the last
                    run that finished without failures (else as far back as the store keeps)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from entitlements.model import PurchaseState, StoreEvent
from entitlements.ownership import Held, Key, decide, keys_to_lock
from entitlements.state import view

# A new run's default window starts this long before the last clean run's end: a store may
# list a record a little after its time (indexing, retries).
OVERLAP = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Counts:
    """The report of a run. checked: every store record or purchase looked at; missing: what
    the service had not applied (a notification not in the journal, a statement or re-read
    that changes stored state), applied now; corrected: of those, the ones that changed what
    clients read; failed: what could not be checked or applied."""

    checked: int = 0
    missing: int = 0
    corrected: int = 0
    failed: int = 0

    def plus(
        self, *, checked: int = 0, missing: int = 0, corrected: int = 0, failed: int = 0
    ) -> Counts:
        """These counts with the given numbers added."""
        return Counts(
            self.checked + checked,
            self.missing + missing,
            self.corrected + corrected,
            self.failed + failed,
        )


@dataclass(frozen=True, slots=True)
class Position:
    """Where a run stands: `done` items of the page at `cursor` of `step` are completed (for
    re-reads the cursor is the last purchase row id done, and `done` stays 0)."""

    step: str | None = None
    cursor: str | None = None
    done: int = 0

    def to_json(self) -> dict[str, Any]:
        """The position as the run stores it (JSON)."""
        return {"step": self.step, "cursor": self.cursor, "done": self.done}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Position:
        """The inverse of `to_json`; a missing or malformed field reads as the start."""
        doc = doc or {}
        step, cursor, done = doc.get("step"), doc.get("cursor"), doc.get("done")
        return cls(
            step if isinstance(step, str) else None,
            cursor if isinstance(cursor, str) else None,
            done if isinstance(done, int) and done > 0 else 0,
        )


def corrections(stored: Mapping[Key, PurchaseState], events: Sequence[StoreEvent]) -> list[Key]:
    """The purchases whose view the events change (a purchase not stored yet counts), when
    folded onto `stored` as ingest folds them (`ownership.decide`, replaced-token marks)."""
    held = {key: Held(stored.get(key), None) for key in keys_to_lock(events)}
    decision = decide(held, events, submitted_by=None, policy="transfer")
    changed = []
    for write in decision.writes:
        key = (write.state.store, write.state.purchase_id)
        before = stored.get(key)
        if before is None or view(before) != view(write.state):
            changed.append(key)
    return sorted(set(changed))


def default_since(last_clean_until: datetime | None) -> datetime | None:
    """The start of a run's window when none is asked (None: all the store keeps)."""
    return None if last_clean_until is None else last_clean_until - OVERLAP
