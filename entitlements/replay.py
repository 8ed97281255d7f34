"""Replay's pure core: fold re-derived journal entries exactly as ingest does, and judge each
purchase, stored or missing, against the result. No I/O, no clock (`services.replay` is the shell).

    fold(batches, aliases)             each entry's events through `ownership.decide` onto the
                                       states the earlier entries left, in journal order (an
                                       erasure's checkpoint sets the state): the state, and the
                                       owner the store's statements give, of every purchase the
                                       entries touch
    unusable(entry)                    why an entry cannot be re-derived (payload pruned or
                                       erased, journaled before store reads were recorded)
    owner_of(recorded, folded)         who the journal says owns a purchase, and how it knows
    judge(stored, replayed, …)         the Finding for one stored purchase: the same, the fields
                                       that differ, or why it is not re-derivable (never a guess)
    judge_missing(missing, …)          the Finding for a purchase the journal names whose row is
                                       gone: what recreating it writes, or why it cannot be
    describe(finding, outcome)         its report line (purchases by a one-way reference)

Owners. Ingest records the owner each write decided (`purchase_owners`, kept naming the
current customer through merges and erasure): that is the owner, compared like a column.
For a purchase journaled only before that record existed, the store's statements are the
evidence (link hints, the replaced purchase's owner: what ingest links an unlinked purchase
by), unless a submission touched it: a submission links to its submitter, whom the journal
does not name, so the owner is then unknown. Such owners are never compared, only used to
recreate a lost row, and said to be what they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from entitlements.codec import to_jsonable
from entitlements.model import PurchaseState, PurchaseView, Store, StoreEvent
from entitlements.ownership import Held, Key, decide, keys_to_lock
from entitlements.state import view

# The journal entry an erasure writes per purchase of the customer (customer_repository):
# no payload (the person's are dropped), the purchase's state at that moment as `checkpoint`.
ERASURE = "ERASURE"
# Who a submission linked a purchase to, in the fold: a customer the journal does not name.
# No app user id can equal it (control characters are refused).
_SUBMITTER = "\x00submitter"

OwnerSource = Literal["recorded", "store", "unknown"]


@dataclass(frozen=True, slots=True)
class Recorded:
    """The latest owner ingest recorded for a purchase (an alias read as its customer), and
    when the purchase row was first stored. `notification_id` None: copied from `purchases`
    when the record began (migration 0009)."""

    app_user_id: str | None
    purchase_created_at: datetime
    notification_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredPurchase:
    """A purchase row as stored: the raw state JSON, the view columns, who owns it (and who
    the journal recorded as its owner)."""

    store: Store
    purchase_id: str
    owner: str | None
    state: Mapping[str, Any] | None
    view: PurchaseView
    state_updated_at: datetime
    created_at: datetime
    recorded: Recorded | None = None

    @property
    def key(self) -> Key:
        """(store, purchase id): the purchase's identity."""
        return (self.store, self.purchase_id)


@dataclass(frozen=True, slots=True)
class MissingPurchase:
    """A purchase the journal names that has no row."""

    store: Store
    purchase_id: str
    recorded: Recorded | None = None

    @property
    def key(self) -> Key:
        """(store, purchase id): the purchase's identity."""
        return (self.store, self.purchase_id)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A journal row as replay reads it (`reads`: the document of receipts.recording;
    `checkpoint`: an ERASURE entry's state JSON)."""

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
    checkpoint: Mapping[str, Any] | None = None

    @property
    def is_checkpoint(self) -> bool:
        """Whether this is an ERASURE entry holding a checkpoint state."""
        return self.notification_type == ERASURE and self.checkpoint is not None


@dataclass(frozen=True, slots=True)
class Rederived:
    """One journal entry re-derived: its events (`submitted`: an app submission, which
    linked them to its submitter), or the state an erasure's checkpoint holds."""

    events: tuple[StoreEvent, ...] = ()
    submitted: bool = False
    checkpoint: PurchaseState | None = None


@dataclass(frozen=True, slots=True)
class Folded:
    """The fold: every touched purchase's state, and its owner by the store's statements
    (`_SUBMITTER`: linked by a submission to someone the journal does not name)."""

    states: dict[Key, PurchaseState]
    owners: dict[Key, str | None]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who the journal says owns a purchase: `recorded` (by ingest), `store` (its statements:
    link hints, the replaced purchase's owner; owners were not recorded yet) or `unknown` (a
    submission linked it before owners were recorded; `app_user_id` is then None)."""

    app_user_id: str | None
    source: OwnerSource


@dataclass(frozen=True, slots=True)
class Difference:
    """One field whose stored value is not the re-derived one (values as shown)."""

    field: str
    stored: str
    replayed: str


@dataclass(frozen=True, slots=True)
class Finding:
    """What replay found for one purchase. `differences` empty, `missing` false and
    `not_rederivable` None: the stored state is exactly what the journal gives. `missing`:
    the journal names it but its row is gone; `replayed` and `replayed_owner` are then what
    recreating it writes."""

    store: Store
    purchase_id: str
    owner: str | None
    differences: tuple[Difference, ...] = ()
    not_rederivable: str | None = None
    replayed: PurchaseState | None = None
    entry_ids: tuple[int, ...] = ()
    missing: bool = False
    replayed_owner: Owner | None = None

    @property
    def differs(self) -> bool:
        """Whether the journal gives something else than what is stored (a missing row
        included); never for a purchase that could not be re-derived."""
        return self.not_rederivable is None and (self.missing or bool(self.differences))


def fold(batches: Iterable[Rederived], aliases: Mapping[str, str] | None = None) -> Folded:
    """The state of every purchase the batches touch, folded as ingest folds them: each batch
    through `decide` (apply per purchase, then the supersede marks) onto what the earlier
    ones left; a checkpoint replaces the state. Owners as ingest links them from the store's
    statements (`aliases`: today's, for the link hints); a submission's are `_SUBMITTER`."""
    states: dict[Key, PurchaseState] = {}
    owners: dict[Key, str | None] = {}
    for batch in batches:
        if batch.checkpoint is not None:
            key = (batch.checkpoint.store, batch.checkpoint.purchase_id)
            states[key], owners[key] = batch.checkpoint, _SUBMITTER  # recorded: see owner_of
            continue
        events = batch.events
        held = {key: Held(states.get(key), owners.get(key)) for key in keys_to_lock(events)}
        decision = decide(
            held,
            events,
            submitted_by=_SUBMITTER if batch.submitted else None,
            policy="transfer",
            aliases=aliases,
            proven=True,
        )
        for write in decision.writes:
            key = (write.state.store, write.state.purchase_id)
            states[key], owners[key] = write.state, write.owner
    return Folded(states, owners)


def link_hints(batches: Iterable[Rederived]) -> set[str]:
    """The app user ids the batches' events name (to resolve through today's aliases)."""
    return {e.app_user_id for b in batches for e in b.events if e.app_user_id}


def owner_of(recorded: Recorded | None, folded: str | None) -> Owner:
    """The owner by the journal: the recorded one, else the store's statements' (unknown
    when a submission linked it)."""
    if recorded is not None:
        return Owner(recorded.app_user_id, "recorded")
    if folded == _SUBMITTER:
        return Owner(None, "unknown")
    return Owner(folded, "store")


def unusable(entry: JournalEntry) -> str | None:
    """Why this entry cannot be re-derived from what the journal still holds, or None."""
    if entry.is_checkpoint:
        return None
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
    owner: Owner | None = None,
) -> Finding:
    """The finding for one stored purchase, given every journal entry that touched it (in
    journal order), the reasons some of them could not be re-derived, the fold and the owner
    by the journal (compared when it was recorded)."""
    ids = tuple(e.id for e in entries)
    finding = Finding(
        stored.store, stored.purchase_id, stored.owner, entry_ids=ids, replayed_owner=owner
    )
    reason = _why_not(entries, replayed, blocked, stored.created_at, journal_complete_since)
    if reason is not None:
        return dataclasses.replace(finding, not_rederivable=reason)
    assert replayed is not None
    differences = compare(stored, replayed)
    if owner is not None and owner.source == "recorded" and owner.app_user_id != stored.owner:
        differences += (Difference("owner", shown(stored.owner), shown(owner.app_user_id)),)
    return dataclasses.replace(finding, differences=differences, replayed=replayed)


def judge_missing(
    missing: MissingPurchase,
    replayed: PurchaseState | None,
    entries: Sequence[JournalEntry],
    blocked: Mapping[int, str],
    *,
    journal_complete_since: datetime | None,
    owner: Owner,
) -> Finding:
    """The finding for a purchase the journal names whose row is gone: recreated from its
    entries (as `judge` would re-derive it) with the owner by the journal, or why not."""
    ids = tuple(e.id for e in entries)
    finding = Finding(
        missing.store, missing.purchase_id, None, entry_ids=ids, missing=True, replayed_owner=owner
    )
    created_at = missing.recorded.purchase_created_at if missing.recorded else None
    reason = _why_not(entries, replayed, blocked, created_at, journal_complete_since)
    if reason is not None:
        return dataclasses.replace(finding, not_rederivable=reason)
    return dataclasses.replace(finding, replayed=replayed)


def _why_not(
    entries: Sequence[JournalEntry],
    replayed: PurchaseState | None,
    blocked: Mapping[int, str],
    created_at: datetime | None,
    journal_complete_since: datetime | None,
) -> str | None:
    """Why a purchase with these entries cannot be re-derived, or None. Entries before its
    latest erasure checkpoint do not count: the checkpoint holds what they produced."""
    checkpoints = [i for i, e in enumerate(entries) if e.is_checkpoint]
    counted = entries[checkpoints[-1] :] if checkpoints else entries
    if (
        not checkpoints
        and journal_complete_since is not None
        and created_at is not None
        and created_at < journal_complete_since
    ):
        # Submissions before the journal kept them left no entry at all: never complete.
        return f"stored before the journal was complete ({shown(journal_complete_since)})"
    if blocking := [blocked[e.id] for e in counted if e.id in blocked]:
        return blocking[0] + (f" and {len(blocking) - 1} more" if len(blocking) > 1 else "")
    if not entries or replayed is None:
        return "no journal entry applied to it"
    return None


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


def purchase_ref(purchase_id: str) -> str:
    """A short one-way reference to a purchase (its store id may be a bearer token)."""
    return hashlib.sha256(purchase_id.encode()).hexdigest()[:12]


def describe(finding: Finding, outcome: str) -> str:
    """One report line: `<store> <ref> customer=<id> <outcome>: <what>` (customer `-`: none,
    `?`: unknown)."""
    owner = finding.replayed_owner
    if not finding.missing:
        customer = finding.owner if finding.owner is not None else "-"
    elif owner is None or owner.source == "unknown":
        customer = "?"
    else:
        customer = owner.app_user_id if owner.app_user_id is not None else "-"
    head = f"{finding.store.value} {purchase_ref(finding.purchase_id)} customer={customer}"
    if finding.not_rederivable is not None:
        return f"{head} {outcome}: {finding.not_rederivable}"
    if finding.missing:
        return f"{head} {outcome}: {_recreation(finding)}"
    what = "; ".join(f"{d.field} {d.stored} → {d.replayed}" for d in finding.differences)
    return f"{head} {outcome}: {what}"


def _recreation(finding: Finding) -> str:
    """What recreating a lost row writes: product, status, expiry, how many entries gave it,
    and where its owner comes from."""
    assert finding.replayed is not None
    assert finding.replayed_owner is not None
    derived = view(finding.replayed)
    what = [derived.product_id or "(no product)", derived.status.value]
    if derived.expires_at is not None:
        what.append(f"expires_at {shown(derived.expires_at)}")
    if derived.superseded:
        what.append("superseded")
    owner = finding.replayed_owner
    if owner.source == "recorded":
        whose = "owner as journaled" if owner.app_user_id else "no owner, as journaled"
    elif owner.source == "store":
        how = "the store's link" if owner.app_user_id else "none, as the store's statements say"
        whose = f"owner not journaled (entries before migration 0009): {how}"
    else:
        whose = (
            "owner unknown: not journaled (entries before migration 0009), and a submission "
            "linked it to someone the journal does not name"
        )
    n = len(finding.entry_ids)
    return f"{', '.join(what)}; from {n} journal entr{'y' if n == 1 else 'ies'}; {whose}"


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
