"""Store-neutral value types: what a store says (StoreEvent) and what we keep (PurchaseState).

Everything past `receipts/` speaks only these words. Apple's camelCase and Google's numeric
codes are translated into them inside `receipts/`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

# The service's clock: injected everywhere time is read (tests move it instead of sleeping).
Clock = Callable[[], datetime]

# App user ids (contract §2): 1-128 characters without control characters or whitespace.
# Also refused: the other invisible characters (Unicode format characters such as U+200B, and
# surrogates), so that two ids never look the same in the console or the audit log. `\Z`,
# not `$`: `$` also matches before a trailing newline ("u-1\n" would pass for "u-1").
APP_USER_ID_MAX = 128


# Unicode categories Cc, Cf, Cs, Zs, Zl, Zp and whatever str.isspace() calls space, as one
# character class (tests/unit/test_app_user_ids.py recomputes it from unicodedata).
INVISIBLE = (
    "\x00-\x20\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u1680"
    "\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_APP_USER_ID = re.compile(f"[^{INVISIBLE}]{{1,{APP_USER_ID_MAX}}}\\Z")


def is_app_user_id(value: str) -> bool:
    """Whether `value` can name a customer (and so be read back at /v1/customers/{id})."""
    return _APP_USER_ID.match(value) is not None


class Store(StrEnum):
    """Where a purchase or grant comes from (the contract's `store` field)."""

    APP_STORE = "app_store"
    PLAY_STORE = "play_store"
    PROMOTIONAL = "promotional"


class Status(StrEnum):
    """The contract's entitlement `status` values, plus PENDING for unpaid store purchases."""

    ACTIVE = "active"
    GRACE_PERIOD = "grace_period"
    BILLING_RETRY = "billing_retry"
    ON_HOLD = "on_hold"
    PAUSED = "paused"
    EXPIRED = "expired"
    REVOKED = "revoked"
    # A purchase the store has not been paid for yet (Google pending purchases). It never
    # grants an entitlement and is never shown as an entitlement's status.
    PENDING = "pending"


class PeriodType(StrEnum):
    """The contract's `period_type` values."""

    TRIAL = "trial"
    INTRO = "intro"
    NORMAL = "normal"
    PROMOTIONAL = "promotional"


class PurchaseKind(StrEnum):
    """What kind of product a purchase is; decides whether and how it can grant access."""

    SUBSCRIPTION = "subscription"
    NON_RENEWING = "non_renewing"
    NON_CONSUMABLE = "non_consumable"
    CONSUMABLE = "consumable"


class Ownership(StrEnum):
    """Apple's inAppOwnershipType; Google purchases are always PURCHASED."""

    PURCHASED = "purchased"
    FAMILY_SHARED = "family_shared"


class EventKind(StrEnum):
    """Our vocabulary for what a store notification means. Used for logs, the change feed
    and the journal; `apply` derives state from the facts, not from this label."""

    PURCHASED = "purchased"
    RENEWED = "renewed"
    RENEWAL_ENABLED = "renewal_enabled"
    RENEWAL_DISABLED = "renewal_disabled"
    PRODUCT_CHANGED = "product_changed"
    BILLING_FAILED = "billing_failed"
    BILLING_RECOVERED = "billing_recovered"
    GRACE_PERIOD_EXPIRED = "grace_period_expired"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    REFUND_DECLINED = "refund_declined"
    REFUND_REVERSED = "refund_reversed"
    REVOKED = "revoked"
    PRICE_INCREASE = "price_increase"
    RENEWAL_EXTENDED = "renewal_extended"
    OFFER_REDEEMED = "offer_redeemed"
    PAUSED = "paused"
    ON_HOLD = "on_hold"
    CONSUMPTION_REQUEST = "consumption_request"
    STATE_REFRESHED = "state_refreshed"  # a state read from a store API (submission, Google RTDN)
    INFORMATIONAL = "informational"


def decimal_text(value: Decimal) -> str:
    """An exact decimal as the contract writes amounts: "9.99", "10", "0", "0.5"."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


@dataclass(frozen=True, slots=True)
class Price:
    """What the store charged for a period, as it states it: an exact decimal `amount` (a
    string such as "9.99", never a float; "0" for a free trial) in the store's `currency`
    (ISO 4217, never converted)."""

    amount: str
    currency: str


@dataclass(frozen=True, slots=True)
class TransactionFacts:
    """One store transaction (Apple transaction, Google line item/order) as last signed.

    Two clocks, never compared with each other (see `StoreEvent`): `signed_at` is on the
    statement clock and versions this transaction's data: of two copies of the same
    `transaction_id`, the later-signed one is the truth (a refund adds `revoked_at`, a
    refund reversal removes it, a renewal extension moves `expires_at`). `purchased_at`,
    `expires_at` and `revoked_at` are the store's own times, shown to clients.
    `first_stated_at` is kept by `apply`: the earliest statement (statement clock) that
    carried this transaction, so a store verdict can be compared with it on one clock.
    """

    transaction_id: str
    product_id: str
    kind: PurchaseKind
    purchased_at: datetime | None  # None: not paid yet (a pending purchase has no start)
    signed_at: datetime
    expires_at: datetime | None = None  # None: never expires (non-consumables)
    original_purchased_at: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    period_type: PeriodType = PeriodType.NORMAL
    ownership: Ownership = Ownership.PURCHASED
    first_stated_at: datetime | None = None
    price: Price | None = None  # None where the store states none
    # The store's id of the charge for this period: Apple's transaction id, Google's order id
    # (one Play line item is re-stated per read; its order id tells its paid periods apart).
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class RenewalFacts:
    """The store's renewal intent for a subscription, as last signed (`signed_at`: the
    statement clock)."""

    signed_at: datetime
    will_renew: bool
    auto_renew_product_id: str | None = None
    in_billing_retry: bool = False
    grace_period_expires_at: datetime | None = None
    price_increase_accepted: bool | None = None
    expiration_reason: str | None = None


class Flag(StrEnum):
    """Conditions whose detection time is shown (contract §3)."""

    UNSUBSCRIBE = "unsubscribe"  # auto-renew turned off
    BILLING_ISSUE = "billing_issue"  # a renewal charge failed


@dataclass(frozen=True, slots=True)
class FlagStatement:
    """The store says a condition was set (or cleared) at `at`, a time of its own clock.

    Apple: the signed date of the renewal info or notification. Google: the time a user
    cancelled, or the event time of a notification whose type states the change (cancelled,
    in grace, recovered, …): a Play read shows the state *now*, so it cannot say when a
    condition began. receipts/ names the store fields.
    """

    flag: Flag
    is_set: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """One verified statement of a store about one purchase, in our words.

    `purchase_id` is the stable key of the purchase: Apple's original transaction id,
    Google's purchase token.

    Times come from two clocks that are never compared with each other:
    - the *statement clock* orders statements about one purchase: `occurred_at` (and the
      facts' `signed_at`). Apple: the signed date (Apple's clock). Google: the moment this
      host read the Play Developer API, whose answers carry no time of their own; Play
      reads are only ever compared with other Play reads.
    - the *store's times* are facts shown to clients: purchase, expiry, revocation times,
      and the `flags` statements (auto-renew off, billing issue), each at a time of the
      store's own clock (Apple: a signed date; Google: a cancel time or the notification's
      event time), so a late delivery or a replay yields the same record.

    `status` is the store's own verdict when it gives one (Apple's subscription status,
    Google's subscription state). `revoked_at` is a revocation stated by the notification
    itself (Google's revoked and voided-purchase notifications), at the store's time; it is
    sticky.
    """

    store: Store
    purchase_id: str
    kind: EventKind
    occurred_at: datetime
    is_sandbox: bool
    transaction: TransactionFacts | None = None
    renewal: RenewalFacts | None = None
    status: Status | None = None
    revoked_at: datetime | None = None
    flags: tuple[FlagStatement, ...] = ()
    app_user_id: str | None = None  # link hint: Apple's app account token, Google's account id
    supersedes: str | None = None  # Google's linked purchase token: the purchase it replaces
    environment: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # store extras kept for inspection
    app: str | None = None  # the app it was bought in: Apple's bundle id, Google's package name


@dataclass(frozen=True, slots=True)
class FlagHistory:
    """When a boolean condition (auto-renew off, billing issue) was first seen set.

    Kept so that the answer does not depend on the order statements arrive in: the
    detection time is the earliest `set` statement newer than the latest `clear` one. Every
    time here is the store's own (see `FlagStatement`), so they compare on one clock.
    """

    cleared_at: datetime | None = None
    set_times: tuple[datetime, ...] = ()

    MAX_SET_TIMES = 32


@dataclass(frozen=True, slots=True)
class PurchaseState:
    """Everything we keep about one store purchase; `apply` folds StoreEvents into it."""

    store: Store
    purchase_id: str
    is_sandbox: bool
    updated_at: datetime
    transactions: tuple[TransactionFacts, ...] = ()  # newest-first by purchase time, bounded
    renewal: RenewalFacts | None = None
    store_status: Status | None = None
    store_status_at: datetime | None = None
    revoked_at: datetime | None = None  # sticky revocation stated by a notification (store time)
    supersedes: str | None = None
    superseded_by: str | None = None
    environment: str | None = None
    unsubscribe: FlagHistory = FlagHistory()
    billing_issue: FlagHistory = FlagHistory()
    app: str | None = None  # bundle id or package name; the first statement naming it decides

    MAX_TRANSACTIONS = 16


@dataclass(frozen=True, slots=True)
class PurchaseView:
    """The contract's per-purchase fields, derived from a PurchaseState."""

    store: Store
    purchase_id: str
    product_id: str
    kind: PurchaseKind
    status: Status
    period_type: PeriodType
    will_renew: bool
    expires_at: datetime | None
    grace_period_expires_at: datetime | None
    purchased_at: datetime | None
    is_sandbox: bool
    unsubscribe_detected_at: datetime | None
    billing_issue_detected_at: datetime | None
    revoked_at: datetime | None
    ownership: Ownership = Ownership.PURCHASED
    superseded: bool = False
    app: str | None = None
    price: Price | None = None  # the current period's (the latest transaction's)
