"""The store port: what webhooks and purchase submissions (and later reconciliation and the
console) ask a store adapter (`receipts.apple.adapter`, `receipts.google.adapter`), answered
in our words. Store JSON, store constants and store names of things stop in the adapters.

    receive(authorization, body) → Inbound       authenticate and verify; no store API call
    resolve(inbound, now)        → Resolution    the StoreEvents, asking the store API if needed
    submit(body, now)            → Resolution    a purchase handed over by an app, validated
    Resolution.write             → runs inside the ingest transaction (rows that must commit
                                   with the state: pending Play acknowledgements)
    Resolution.after_commit      → runs after the commit (acknowledge now)
    Resolution.reads             → every store API answer the events came from, raw, for
                                   the journal (`receipts.recording`)
    reread(payload)              → Inbound      a journaled message again (replay)
    replaying(reads)             → StoreAdapter the same adapter, its store API answered
                                   from the journal (replay)

`now` is the service clock: the moment a store API is read (it orders reads of stores whose
answers carry no time of their own). The journal keeps it with the reads, so that replay
re-derives every event with the same `now`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from entitlements.database import TransactionWrite
from entitlements.model import Store, StoreEvent
from receipts.recording import StoreRead

Result = Literal["processed", "ignored", "rejected"]

# The journal's type of an app submission (a SUBMISSION entry's payload: SUBMISSION_FIELDS).
SUBMISSION = "SUBMISSION"

# The contract's fields of a submission that the adapters read (journaled for replay; the
# submitter's app_user_id is not: who submitted does not change what the store says).
SUBMISSION_FIELDS = (
    "store",
    "signed_transaction",
    "transaction_id",
    "receipt",
    "package_name",
    "product_id",
    "purchase_token",
    "product_type",
)


async def no_follow_up() -> None:
    """The `after_commit` of a resolution with nothing to do after the commit."""
    return


@dataclass(frozen=True, slots=True)
class Inbound:
    """One authenticated, verified inbound store message, before any store API call.

    `settled` is set when nothing is left to resolve (a TEST notification is `ignored`, a
    poison Pub/Sub message `rejected`, with `reason`); otherwise `resolve` gives the events.
    `verified` is the adapter's own verified message, for its `resolve`.
    """

    store: Store
    message_id: str
    type_name: str | None  # the store's name of the message type, for the journal and logs
    subtype: str | None
    stated_at: datetime | None  # the store's time of the message
    purchase_id: str | None
    payload: str  # the raw body, journaled
    log: Mapping[str, Any] = field(default_factory=dict)  # ids only, never tokens
    settled: Result | None = None
    reason: str | None = None
    verified: Any = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the store says: our events, the journal's verdict, and the follow-up work."""

    events: list[StoreEvent]
    result: Result = "processed"
    reason: str | None = None
    write: TransactionWrite | None = None
    after_commit: Callable[[], Awaitable[None]] = no_follow_up
    log: Mapping[str, Any] = field(default_factory=dict)
    reads: tuple[StoreRead, ...] = ()


class StoreAdapter(Protocol):
    """One store, as the webhooks and purchase submissions use it."""

    @property
    def store(self) -> Store:
        """Which store this adapter speaks for."""
        ...

    async def receive(self, authorization: str | None, body: bytes) -> Inbound:
        """Authenticate and verify an inbound message (errors: receipts.errors)."""
        ...

    async def resolve(self, inbound: Inbound, now: datetime) -> Resolution:
        """The events of a verified message that is not `settled`."""
        ...

    async def submit(self, body: Mapping[str, Any], now: datetime) -> Resolution:
        """Validate a purchase an app hands over (the contract's store fields of `body`)."""
        ...

    async def reread(self, payload: str) -> Inbound:
        """A journaled message again, verified as far as the journal allows: signed store
        data is verified again; a caller's credentials (not journaled) are not."""
        ...

    def replaying(self, reads: Sequence[StoreRead]) -> StoreAdapter:
        """This adapter with every store API call answered from `reads` (replay)."""
        ...
