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
    refresh(request, now)        → Resolution    reconciliation: a store statement listed by
                                   the store, or a re-read of a purchase (`request`: the
                                   RECONCILE journal entry's payload)
    reread(payload)              → Inbound      a journaled message again (replay)
    replaying(reads)             → StoreAdapter the same adapter, its store API answered
                                   from the journal (replay)

`receiptd reconcile` also asks a store (`Reconciling`) for its lists: `listings` (what to
page: Apple's notification history per environment, Play's voided purchases per package),
`list_page` (one page, as `Listed` items: a notification body to `receive` as the webhook
does, or a `refresh` request) and `reread_requests` (how to re-read a purchase we hold).

`now` is the service clock: the moment a store API is read (it orders reads of stores whose
answers carry no time of their own). The journal keeps it with the reads, so that replay
re-derives every event with the same `now`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from entitlements.model import Store, StoreEvent
from receipts.recording import StoreRead
from storage.database import TransactionWrite

Result = Literal["processed", "ignored", "rejected"]

# The journal's type of an app submission (a SUBMISSION entry's payload: SUBMISSION_FIELDS).
SUBMISSION = "SUBMISSION"
# The journal's type of what reconciliation applied besides store notifications (a RECONCILE
# entry's payload: the `refresh` request, JSON; its subtype: the request's "read").
RECONCILE = "RECONCILE"

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
    app: str | None = None  # the app the message names (bundle id, package name)


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
    # A submission only: whether its proof shows that the bearer holds the purchases (a
    # store-signed transaction verified here, a Play purchase token), rather than naming
    # them (a transaction id, a legacy receipt whose signature is not checked).
    proves_holding: bool = False


@dataclass(frozen=True, slots=True)
class Listing:
    """One list reconciliation pages over [since, until): `since` is already limited to how
    far back the store keeps it (`clamped` says whether that cut the asked window)."""

    name: str  # stable: a resumed run finds its place by it
    title: str  # for people
    since: datetime
    until: datetime
    clamped: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    """One record of a store's list: a notification the store sent (`body`, received exactly
    as the webhook receives it), or a statement to apply with `refresh` (`request`, journaled
    as RECONCILE under `message_id`) about `purchase_id`. `label` names it in a report
    (never a token)."""

    label: str
    body: bytes | None = None
    request: Mapping[str, Any] | None = None
    message_id: str | None = None
    purchase_id: str | None = None
    stated_at: datetime | None = None  # the store's time of the statement


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of a listing, and the cursor of the next one (None: the listing is done)."""

    items: list[Listed]
    cursor: str | None


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

    async def refresh(self, request: Mapping[str, Any], now: datetime) -> Resolution:
        """Reconciliation's statement: a listed store record, or a purchase read again."""
        ...

    async def reread(self, payload: str) -> Inbound:
        """A journaled message again, verified as far as the journal allows: signed store
        data is verified again; a caller's credentials (not journaled) are not."""
        ...

    def replaying(self, reads: Sequence[StoreRead]) -> StoreAdapter:
        """This adapter with every store API call answered from `reads` (replay)."""
        ...


class Reconciling(StoreAdapter, Protocol):
    """A store as `receiptd reconcile` asks it (its API credentials are configured)."""

    def listings(self, since: datetime | None, until: datetime, now: datetime) -> list[Listing]:
        """What to page for the window [since, until) (None: as far back as the store
        keeps), limited to what the store keeps as of `now`."""
        ...

    async def list_page(self, listing: Listing, cursor: str | None) -> ListedPage:
        """One page of a listing (cursor None: the first); StoreRequestRejected when the
        store refuses the cursor or the window, StoreUnavailable when it cannot answer."""
        ...

    def reread_requests(
        self, purchase_id: str, environment: str | None, app: str | None = None
    ) -> list[dict[str, Any]]:
        """`refresh` requests that re-read a purchase we hold, to try in order until one
        does not raise PurchaseNotFound (several Play packages: one each)."""
        ...


# --- store actions (support acting on a purchase: extend, revoke) ------------------------


@dataclass(frozen=True, slots=True)
class ActionTarget:
    """A stored purchase a store action is about."""

    purchase_id: str  # Apple's original transaction id, Google's purchase token
    product_id: str
    subscription: bool
    environment: str | None
    app: str | None  # bundle id or package name


ActionStatus = Literal["requested", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What the store answered: `requested` (accepted; the purchase changes when the store
    confirms), `refused` (the store will refuse it again: `detail` says why) or `failed`
    (the store could not be reached; trying later may work). `answer`: the store's own
    answer or error, kept with the action."""

    status: ActionStatus
    detail: str
    answer: Mapping[str, Any] = field(default_factory=dict)


class StoreActing(Protocol):
    """A store's support actions on one purchase (receipts.apple.actions,
    receipts.google.actions)."""

    store: Store

    async def extend(
        self, target: ActionTarget, *, days: int, reason: str, request_id: str
    ) -> ActionOutcome:
        """Move the subscription's renewal (expiry) `days` later, for `reason`
        (`customer_satisfaction`, `service_outage`, `other`); `request_id` makes a repeat
        of the same request harmless where the store supports it."""
        ...

    async def revoke(self, target: ActionTarget, *, refund: str) -> ActionOutcome:
        """End access now with a `refund` of "full" or "prorated"."""
        ...
