"""Who owns each purchase after a batch of store statements, and whose entitlements changed.

Pure: the service locks the rows, asks `decide`, then writes what it says. Rules:
- Ids are customers, not aliases: a submitter or a store hint that is an alias stands for
  the customer it was merged into.
- A purchase submitted by an app belongs to the submitter; a purchase already linked to
  someone else moves under the "transfer" policy (both users get a change) or is refused
  under "keep" (`PurchaseOwnedByAnotherUser`, 409). It moves only when the submission
  `proven` that its bearer holds the purchase (a verified store-signed transaction, a Play
  purchase token, or a backend key vouching for its users): a bare transaction id proves
  nothing, so an unproven submission that touches another user's purchase is refused
  whatever the policy, and the whole batch with it. A purchase left with the pseudonym of an
  erased customer moves to whoever submits it, whatever the policy.
- Otherwise a linked purchase keeps its owner; an unlinked one is linked by the store's hint
  (Apple's app account token, Google's obfuscated account id) when the hint is a valid app
  user id, else by the owner of the purchase it replaces (Google's linked purchase token).
- A replaced purchase is marked superseded and its owner gets a `product_changed` change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from entitlements.errors import PurchaseOwnedByAnotherUser
from entitlements.model import EventKind, PurchaseState, Store, StoreEvent, is_app_user_id
from entitlements.state import apply, mark_superseded

TransferPolicy = Literal["transfer", "keep"]
UNPROVEN_CLAIM = (
    "the purchase belongs to another user; a transaction id or receipt does not prove that "
    "you hold it: submit the signed transaction"
)
Key = tuple[Store, str]


@dataclass(frozen=True, slots=True)
class Held:
    """A purchase row as locked for the batch: its stored state and owner (and whether that
    owner is the pseudonym an erasure left)."""

    state: PurchaseState | None
    owner: str | None
    owner_erased: bool = False


@dataclass(frozen=True, slots=True)
class Write:
    """A purchase state to store, with its owner."""

    state: PurchaseState
    owner: str | None


@dataclass(frozen=True, slots=True)
class Transfer:
    """A purchase that moved from one user to another (or to nobody)."""

    store: Store
    purchase_id: str
    from_user: str
    to_user: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the batch does: the writes in order, the customers they need to exist, each
    purchase's owner, the users whose entitlements changed (with the change's label), and
    what to log."""

    writes: tuple[Write, ...]
    new_customers: frozenset[str]
    owners: dict[Key, str | None]
    changed: dict[str, str]
    transfers: tuple[Transfer, ...]
    ignored_hints: tuple[Store, ...]


def keys_to_lock(events: Sequence[StoreEvent]) -> list[Key]:
    """Every purchase row the batch touches, in one global order (no deadlocks)."""
    keys = {(e.store, e.purchase_id) for e in events}
    keys |= set(_replacements(events))
    return sorted(keys)


def decide(
    held: Mapping[Key, Held],
    events: Sequence[StoreEvent],
    *,
    submitted_by: str | None,
    policy: TransferPolicy,
    aliases: Mapping[str, str] | None = None,
    proven: bool = False,
) -> Decision:
    """Fold each purchase's statements and decide owners; `held` has every `keys_to_lock`,
    `aliases` maps the aliases among the submitter and the store hints to their customers,
    `proven` says whether the submitter proved it holds the submitted purchases."""
    aliases = aliases or {}
    if submitted_by is not None:
        submitted_by = aliases.get(submitted_by, submitted_by)
    by_purchase: dict[Key, list[StoreEvent]] = {}
    for event in events:
        by_purchase.setdefault((event.store, event.purchase_id), []).append(event)
    superseded = _replacements(events)
    writes: list[Write] = []
    new_customers: set[str] = set()
    owners: dict[Key, str | None] = {}
    changed: dict[str, str] = {}
    transfers: list[Transfer] = []
    ignored: list[Store] = []

    for key, batch in by_purchase.items():
        current = held[key]
        state = current.state
        for event in batch:
            state = apply(state, event)
        assert state is not None
        owner, hint_ignored = _new_owner(
            current, batch, submitted_by, policy, aliases, proven=proven
        )
        if hint_ignored:
            ignored.append(key[0])
        if owner is None and state.supersedes is not None:
            previous = held.get((key[0], state.supersedes))
            owner = previous.owner if previous is not None else None
        if owner is not None and owner != current.owner:
            new_customers.add(owner)
        writes.append(Write(state, owner))
        owners[key] = owner
        label = batch[-1].kind.value
        if current.owner is not None and current.owner != owner:
            label = "transferred"
            changed[current.owner] = label
            transfers.append(Transfer(key[0], key[1], current.owner, owner))
        if owner is not None:
            changed[owner] = label

    for old_key, new_key in superseded.items():
        previous = held[old_key]
        replacing = by_purchase[new_key][-1]
        # A replaced purchase never seen before: a placeholder dated by the replacing
        # statement, so that the same statements always give the same state (replay).
        base = previous.state or PurchaseState(
            store=old_key[0],
            purchase_id=old_key[1],
            is_sandbox=replacing.is_sandbox,  # a test purchase replaces a test purchase
            updated_at=replacing.occurred_at,
            app=replacing.app,  # a purchase is replaced within its app
        )
        marked = mark_superseded(base, new_key[1], replacing.occurred_at)
        writes.append(Write(marked, previous.owner))
        if previous.owner is not None:
            changed.setdefault(previous.owner, EventKind.PRODUCT_CHANGED.value)

    return Decision(
        writes=tuple(writes),
        new_customers=frozenset(new_customers),
        owners=owners,
        changed=changed,
        transfers=tuple(transfers),
        ignored_hints=tuple(ignored),
    )


def _replacements(events: Sequence[StoreEvent]) -> dict[Key, Key]:
    """Replaced purchase → the purchase replacing it (Google's linked purchase token)."""
    return {
        (e.store, e.supersedes): (e.store, e.purchase_id)
        for e in events
        if e.supersedes is not None and e.supersedes != e.purchase_id
    }


def _new_owner(
    current: Held,
    batch: Sequence[StoreEvent],
    submitted_by: str | None,
    policy: TransferPolicy,
    aliases: Mapping[str, str],
    *,
    proven: bool,
) -> tuple[str | None, bool]:
    """The owner after this batch, and whether a store link hint had to be ignored."""
    owner = current.owner
    if submitted_by is not None:
        taken = owner is not None and owner != submitted_by and not current.owner_erased
        if taken and not proven:
            raise PurchaseOwnedByAnotherUser(UNPROVEN_CLAIM)
        if taken and policy == "keep":
            raise PurchaseOwnedByAnotherUser
        return submitted_by, False
    if owner is not None:
        return owner, False
    hints = [e.app_user_id for e in batch if e.app_user_id]
    # A hint no app could read back (Google's obfuscated id is free text) would strand the
    # purchase: leave it for the app's submission or the replaced purchase's owner.
    usable = [h for h in hints if is_app_user_id(h)]
    chosen = aliases.get(usable[-1], usable[-1]) if usable else None
    return chosen, len(usable) < len(hints)
