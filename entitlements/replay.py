"""Replay's pure core: fold re-derived journal entries exactly as ingest does, and judge each
stored purchase against the result. No I/O, no clock (`server.replay` is the shell).

    fold(batches)                      each entry's events through `ownership.decide` onto the
                                       states the earlier entries left, in journal order: the
                                       state of every purchase the entries touch
    unusable(entry)                    why an entry cannot be re-derived (payload pruned or
                                       erased, journaled before store reads were recorded)
    judge(stored, replayed, …)         the Finding for one purchase: the same, the fields that
                                       differ, or why it is not re-derivable (never a guess)

Owners are not re-derived: operators move purchases (merges, erasure) and submissions move
them between users, so only the state and the view derived from it are compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from entitlements.codec import to_jsonable
from entitlements.model import PurchaseState, PurchaseView, Store, StoreEvent
from entitlements.ownership import Held, Key, decide, keys_to_lock
from entitlements.state import view


@dataclass(frozen=True, slots=True)
class StoredPurchase:
    """A purchase row as stored: the raw state JSON, the view columns, who owns it."""

    store: Store
    purchase_id: str
    owner: str | None
    state: Mapping[str, Any] | None
    view: PurchaseView
    state_updated_at: datetime
    created_at: datetime

    @property
    def key(self) -> Key:
        return (self.store, self.purchase_id)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A journal row as replay reads it (`reads`: the document of receipts.recording)."""

    id: int
    store: Store
    message_id: str
    notification_type: str | None
    result: str
    payload: str | None
    reads: Mapping[str, Any] | None
    purchase_ids: tuple[str, ...]
    received_at: datetime
    payload_pruned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One field whose stored value is not the re-derived one (values as shown)."""

    field: str
    stored: str
    replayed: str


@dataclass(frozen=True, slots=True)
class Finding:
    """What replay found for one purchase. `differences` empty and `not_rederivable` None:
    the stored state is exactly what the journal gives."""

    store: Store
    purchase_id: str
    owner: str | None
    differences: tuple[Difference, ...] = ()
    not_rederivable: str | None = None
    replayed: PurchaseState | None = None
    entry_ids: tuple[int, ...] = ()

    @property
    def differs(self) -> bool:
        return self.not_rederivable is None and bool(self.differences)


def fold(batches: Iterable[Sequence[StoreEvent]]) -> dict[Key, PurchaseState]:
    """The state of every purchase the batches touch, folded as ingest folds them: each batch
    through `decide` (apply per purchase, then the supersede marks) onto what the earlier
    ones left. Owners are ignored (see the module docstring)."""
    states: dict[Key, PurchaseState] = {}
    for events in batches:
        held = {key: Held(states.get(key), None) for key in keys_to_lock(events)}
        decision = decide(held, events, submitted_by=None, policy="transfer")
        for write in decision.writes:
            states[(write.state.store, write.state.purchase_id)] = write.state
    return states


def unusable(entry: JournalEntry) -> str | None:
    """Why this entry cannot be re-derived from what the journal still holds, or None."""
    if entry.payload is None:
        when = f" {shown(entry.payload_pruned_at)}" if entry.payload_pruned_at else ""
        return f"payload pruned{when} (journal entry {entry.id})"
    if entry.reads is None:
        return f"journal entry {entry.id} was written before store reads were journaled"
    return None


def judge(
    stored: StoredPurchase,
    replayed: PurchaseState | None,
    entries: Sequence[JournalEntry],
    blocked: Mapping[int, str],
    *,
    journal_complete_since: datetime | None,
) -> Finding:
    """The finding for one stored purchase, given every journal entry that touched it (in
    journal order), the reasons some of them could not be re-derived, and the fold."""
    ids = tuple(e.id for e in entries)
    finding = Finding(stored.store, stored.purchase_id, stored.owner, entry_ids=ids)
    reason = None
    if journal_complete_since is not None and stored.created_at < journal_complete_since:
        # Submissions before the journal kept them left no entry at all: never complete.
        reason = f"stored before the journal was complete ({shown(journal_complete_since)})"
    elif blocking := [blocked[i] for i in ids if i in blocked]:
        reason = blocking[0] + (f" and {len(blocking) - 1} more" if len(blocking) > 1 else "")
    elif not entries or replayed is None:
        reason = "no journal entry applied to it"
    if reason is not None:
        return dataclasses.replace(finding, not_rederivable=reason)
    assert replayed is not None
    return dataclasses.replace(finding, differences=compare(stored, replayed), replayed=replayed)


def compare(stored: StoredPurchase, replayed: PurchaseState) -> tuple[Difference, ...]:
    """The view columns, the state's date column and each key of the state JSON that differ."""
    derived = view(replayed)
    out = [
        Difference(f.name, shown(getattr(stored.view, f.name)), shown(getattr(derived, f.name)))
        for f in dataclasses.fields(PurchaseView)
        if getattr(stored.view, f.name) != getattr(derived, f.name)
    ]
    if stored.state_updated_at != replayed.updated_at:
        out.append(
            Difference(
                "state_updated_at", shown(stored.state_updated_at), shown(replayed.updated_at)
            )
        )
    mine = to_jsonable(replayed)
    theirs = dict(stored.state or {})
    for key in sorted(set(mine) | set(theirs)):
        if theirs.get(key, _ABSENT) != mine.get(key, _ABSENT):
            out.append(
                Difference(f"state.{key}", _json(theirs.get(key, _ABSENT)), _json(mine.get(key)))
            )
    return tuple(out)


_ABSENT = object()


def shown(value: Any) -> str:
    """A value as the report prints it: RFC 3339 times, enum values, JSON literals."""
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _json(value: Any) -> str:
    """A state value: scalars as themselves, lists and objects by their size only."""
    if value is _ABSENT:
        return "absent"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        return "{…}"
    return shown(value)
