"""Money from the stores' own figures (contract §3, "Revenue"; issue 22): the charges and
refunds a purchase's stored state shows, and what each adds to the daily rollups.

A charge is an Apple paid transaction (its transaction id) or a Google Play paid period (its
order id), counted on the store's date of the charge; a refund on the store's date of the
refund. A free trial ("0") and a family-shared copy of someone else's purchase are not
charges. Amounts are exact decimals in the store's currency, never converted.

Google's subscriptionsv2 read names the current period's order but not when it was charged:
the charge is the period's start, from the store's own times. The first order (no suffix)
began at the subscription's start; a renewal began when the period before it ended, as Play
stated that period's expiry in the read before (the stored state). Without such a read (a
renewal whose previous period was never read) it is estimated: the first renewal's order
ends in `..0`, so order `GPA.…..k` pays for period n = k + 2, and a subscription that started
at S and whose n-th period ends at E has periods of (E - S) / n.
A deferral or a pause shifts it; the charge's amount and id are never in doubt.

MRR as of a day is each active paying subscription's price divided by its period in months
(a week 12/52, a year 12), summed per currency; the rollup keeps its change per day (a
charge adds from its start, takes away at its end or refund) so a sum up to the day gives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from entitlements.model import (
    Ownership,
    PurchaseKind,
    PurchaseState,
    Store,
    TransactionFacts,
    decimal_text,
)

_ORDER_INDEX = re.compile(r"\.\.(\d+)$")
_DAY_SECONDS = 86_400
# A period's length in days → its length in months (the contract: a week is 12/52, a year 12).
_WEEK_MONTHS = Decimal(12) / Decimal(52)


@dataclass(frozen=True, slots=True)
class Charge:
    """One charge (and its refund, once the store states one)."""

    store: Store
    purchase_id: str
    charge_id: str
    product_id: str
    app: str | None
    is_sandbox: bool
    amount: Decimal
    currency: str
    charged_at: datetime
    period_end: datetime | None  # a subscription's paid period end; None: one-time
    months: Decimal | None  # the period in months (MRR); None: not recurring
    refunded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A change to one day's rollup row."""

    day: date
    store: Store
    currency: str
    is_sandbox: bool
    gross: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    charges: int = 0
    refunds: int = 0
    mrr: Decimal = Decimal(0)
    subscriptions: int = 0


def charges_of(state: PurchaseState, before: PurchaseState | None = None) -> list[Charge]:
    """The charges a purchase's state shows (its kept transactions); `before`: the state
    it had before this statement (when a Play period began, see the module doc)."""
    found = []
    for tx in state.transactions:
        charge = _charge(state, tx, before)
        if charge is not None:
            found.append(charge)
    return found


def changed_charges(state: PurchaseState, before: PurchaseState | None) -> list[Charge]:
    """The charges a statement adds or refunds: those of `state` that `before` (the stored
    state it replaces) did not show, or showed unrefunded. Everything else is stored already
    (the charge rows are written in the same transaction as the state)."""
    shown = {c.charge_id: c.refunded_at for c in charges_of(before)} if before else {}
    return [
        c
        for c in charges_of(state, before)
        if c.charge_id not in shown or (c.refunded_at is not None and shown[c.charge_id] is None)
    ]


def _previous_end(before: PurchaseState | None, tx: TransactionFacts) -> datetime | None:
    """The expiry Play stated for the period before `tx`'s order, if the stored state shows
    another order of the same line item."""
    if before is None:
        return None
    for old in before.transactions:
        same_item = old.transaction_id == tx.transaction_id and old.product_id == tx.product_id
        if same_item and old.order_id not in {None, tx.order_id} and old.expires_at is not None:
            return old.expires_at
    return None


def _charge(
    state: PurchaseState, tx: TransactionFacts, before: PurchaseState | None
) -> Charge | None:
    if tx.price is None or tx.order_id is None or tx.purchased_at is None:
        return None
    amount = Decimal(tx.price.amount)
    if amount <= 0 or tx.ownership is Ownership.FAMILY_SHARED:
        return None
    subscription = tx.kind is PurchaseKind.SUBSCRIPTION and tx.expires_at is not None
    charged_at = tx.purchased_at
    if subscription and state.store is Store.PLAY_STORE:
        previous_end = _previous_end(before, tx)
        if previous_end is not None and tx.expires_at is not None and previous_end < tx.expires_at:
            charged_at = previous_end
        else:
            charged_at = play_period_start(tx.order_id, tx.purchased_at, tx.expires_at)
    months = None
    if subscription and tx.expires_at is not None:
        months = period_months(charged_at, tx.expires_at)
    refunded = _refunded_at(state, tx)
    return Charge(
        store=state.store,
        purchase_id=state.purchase_id,
        charge_id=tx.order_id,
        product_id=tx.product_id,
        app=state.app,
        is_sandbox=state.is_sandbox,
        amount=amount,
        currency=tx.price.currency,
        charged_at=charged_at,
        period_end=tx.expires_at if subscription else None,
        months=months,
        refunded_at=refunded,
    )


def _refunded_at(state: PurchaseState, tx: TransactionFacts) -> datetime | None:
    """When the store refunded this charge: the transaction's revocation (not a family
    revocation), or — Play states refunds of the purchase, not of one order — the
    purchase's sticky revocation for its current period."""
    if tx.revoked_at is not None and not (tx.revocation_reason or "").startswith("family"):
        return tx.revoked_at
    latest = state.transactions[0] if state.transactions else None
    if state.store is Store.PLAY_STORE and state.revoked_at is not None and tx is latest:
        return state.revoked_at
    return None


def play_period_start(order_id: str, started: datetime, expires: datetime | None) -> datetime:
    """The start of the Play period order `order_id` paid for (see the module doc)."""
    if expires is None or expires <= started:
        return started
    match = _ORDER_INDEX.search(order_id)
    periods = int(match[1]) + 2 if match else 1  # "..0" is the first renewal: period 2
    length = (expires - started) / periods
    return expires - length


def period_months(start: datetime, end: datetime) -> Decimal | None:
    """A paid period's length in months: weeks as 12/52 of a month, else whole months
    (the nearest; 28 to 31 days is one month, 365 days twelve). None for no length."""
    days = Decimal((end - start).total_seconds()) / _DAY_SECONDS
    if days <= 0:
        return None
    if days < 26:
        weeks = max(round(days / 7), 1)
        return _WEEK_MONTHS * weeks
    return Decimal(max(round(days / Decimal("30.436875")), 1))


def charge_deltas(charge: Charge) -> list[Delta]:
    """What a newly stored charge adds to the rollups (its refund too, if already stated)."""
    out = [_delta(charge, charge.charged_at, gross=charge.amount, charges=1)]
    out += _mrr(charge, until=charge.refunded_at)
    if charge.refunded_at is not None:
        out.append(_delta(charge, charge.refunded_at, refunded=charge.amount, refunds=1))
    return out


def refund_deltas(charge: Charge, refunded_at: datetime) -> list[Delta]:
    """What a refund stated after its charge was stored adds (and takes back from MRR)."""
    out = [_delta(charge, refunded_at, refunded=charge.amount, refunds=1)]
    if (
        charge.months is not None
        and charge.period_end is not None
        and refunded_at < charge.period_end
    ):
        share = charge.amount / charge.months
        out.append(_delta(charge, refunded_at, mrr=-share, subscriptions=-1))
        out.append(_delta(charge, charge.period_end, mrr=share, subscriptions=1))
    return out


def _mrr(charge: Charge, *, until: datetime | None) -> list[Delta]:
    if charge.months is None or charge.period_end is None:
        return []
    end = charge.period_end if until is None or until >= charge.period_end else until
    if end <= charge.charged_at:
        return []
    share = charge.amount / charge.months
    return [
        _delta(charge, charge.charged_at, mrr=share, subscriptions=1),
        _delta(charge, end, mrr=-share, subscriptions=-1),
    ]


def _delta(
    charge: Charge,
    at: datetime,
    *,
    gross: Decimal = Decimal(0),
    refunded: Decimal = Decimal(0),
    charges: int = 0,
    refunds: int = 0,
    mrr: Decimal = Decimal(0),
    subscriptions: int = 0,
) -> Delta:
    return Delta(
        at.astimezone(UTC).date(),
        charge.store,
        charge.currency,
        charge.is_sandbox,
        gross=gross,
        refunded=refunded,
        charges=charges,
        refunds=refunds,
        mrr=mrr,
        subscriptions=subscriptions,
    )


def combined(deltas: Iterable[Delta]) -> list[Delta]:
    """Deltas summed per rollup row, in the rows' key order (one lock order for every
    transaction, so concurrent writers cannot deadlock on the rollup rows)."""
    rows: dict[tuple[date, str, str, bool], Delta] = {}
    for d in deltas:
        key = (d.day, d.store.value, d.currency, d.is_sandbox)
        seen = rows.get(key)
        if seen is None:
            rows[key] = d
            continue
        rows[key] = Delta(
            d.day,
            d.store,
            d.currency,
            d.is_sandbox,
            gross=seen.gross + d.gross,
            refunded=seen.refunded + d.refunded,
            charges=seen.charges + d.charges,
            refunds=seen.refunds + d.refunds,
            mrr=seen.mrr + d.mrr,
            subscriptions=seen.subscriptions + d.subscriptions,
        )
    return [rows[k] for k in sorted(rows)]


def amount_text(value: Decimal, *, cents: bool = False) -> str:
    """A sum as the contract writes amounts: exact; with `cents` (MRR, whose shares of a
    price need not end) rounded half up to two decimal places."""
    if cents:
        value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return decimal_text(value)
