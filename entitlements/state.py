"""The pure state machine: fold StoreEvents into a PurchaseState and derive its view.

`apply` is a join of "newest statement wins" registers (per transaction, renewal intent,
store status) plus sticky revocation, so it is idempotent, and the final state does not
depend on the order statements arrive in: duplicates and late deliveries converge.
No I/O, no clock: `now` is passed in where time matters.

One clock per comparison. Statements are ordered on the statement clock (`occurred_at`,
`signed_at`: Apple's signed date, or this host's Play read time); the store's own times
(purchase, expiry, revocation, the flag statements) are shown, and compared only with each
other, never with a statement time. `entitlements.access` compares store times with the
request's `now`, which is what the contract's `active` means.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from entitlements.model import (
    Flag,
    FlagHistory,
    Ownership,
    PeriodType,
    PurchaseKind,
    PurchaseState,
    PurchaseView,
    RenewalFacts,
    Status,
    StoreEvent,
    TransactionFacts,
)

_NO_ACCESS_KINDS = frozenset({PurchaseKind.CONSUMABLE})


def apply(current: PurchaseState | None, event: StoreEvent) -> PurchaseState:
    """Fold one verified store statement into the stored state of its purchase.

    Stale statements change nothing they are older than; repeating a statement is a no-op.
    """
    if current is None:
        current = PurchaseState(
            store=event.store,
            purchase_id=event.purchase_id,
            is_sandbox=event.is_sandbox,
            updated_at=event.occurred_at,
            environment=event.environment,
            app=event.app,
        )
    state = current
    if event.transaction is not None and not state.transactions:
        # Until a statement carries a transaction (a placeholder for a replaced token, a
        # voided notification), the sandbox flag is a guess: the first real one decides.
        state = replace(state, is_sandbox=event.is_sandbox)
    if event.transaction is not None:
        state = replace(
            state,
            transactions=_merge_transaction(
                state.transactions, event.transaction, event.occurred_at
            ),
        )
    if event.renewal is not None:
        state = replace(state, renewal=_newer_renewal(state.renewal, event.renewal))
    if event.status is not None and _status_is_newer(state, event.occurred_at, event.status):
        state = replace(state, store_status=event.status, store_status_at=event.occurred_at)
    for statement in event.flags:
        if statement.flag is Flag.UNSUBSCRIBE:
            unsubscribe = _observe(state.unsubscribe, statement.at, statement.is_set)
            state = replace(state, unsubscribe=unsubscribe)
        else:
            billing = _observe(state.billing_issue, statement.at, statement.is_set)
            state = replace(state, billing_issue=billing)
    if event.revoked_at is not None:
        state = replace(state, revoked_at=_earliest(state.revoked_at, event.revoked_at))
    if event.supersedes is not None and state.supersedes is None:
        state = replace(state, supersedes=event.supersedes)
    return replace(
        state,
        updated_at=max(state.updated_at, event.occurred_at),
        environment=state.environment or event.environment,
        app=state.app or event.app,
    )


def mark_superseded(state: PurchaseState, by_purchase_id: str, at: datetime) -> PurchaseState:
    """Record that a newer purchase replaced this one (Google's linked purchase token),
    stated at `at` (the replacing statement's time, on the statement clock).

    Like `apply`, a join: the mark and `updated_at` end the same whether the replaced
    purchase's own statements come before or after it."""
    superseded_by = by_purchase_id
    if state.superseded_by is not None and state.superseded_by >= by_purchase_id:
        superseded_by = state.superseded_by  # deterministic when two tokens claim one
    return replace(state, superseded_by=superseded_by, updated_at=max(state.updated_at, at))


def view(state: PurchaseState) -> PurchaseView:
    """Derive the contract's fields for one purchase from its stored state.

    Time-dependent parts (`active`, expiry of an active period) are applied at read time by
    `entitlements.access`, not here.
    """
    latest = state.transactions[0] if state.transactions else None
    renewal = state.renewal
    # Only the current transaction's revocation counts: the refund of an older period does
    # not end the current one. A notification's revocation is sticky.
    revoked_at = _earliest(state.revoked_at, latest.revoked_at if latest is not None else None)

    status = _derive_status(state, latest, renewal)
    if revoked_at is not None:
        status = Status.REVOKED
    elif state.superseded_by is not None and status is not Status.REVOKED:
        status = Status.EXPIRED

    grace = None
    if status is Status.GRACE_PERIOD and renewal is not None:
        grace = renewal.grace_period_expires_at
    kind = latest.kind if latest is not None else PurchaseKind.SUBSCRIPTION
    will_renew = bool(renewal.will_renew) if renewal is not None else False
    return PurchaseView(
        store=state.store,
        purchase_id=state.purchase_id,
        product_id=latest.product_id if latest is not None else "",
        kind=kind,
        status=status,
        period_type=latest.period_type if latest is not None else PeriodType.NORMAL,
        will_renew=will_renew,
        expires_at=latest.expires_at if latest is not None else None,
        grace_period_expires_at=grace,
        purchased_at=latest.purchased_at if latest is not None else None,
        is_sandbox=state.is_sandbox,
        # Shown only while they agree with the current state, so that a lost notification
        # (a re-enable, a recovery) cannot leave a stale detection on a healthy purchase.
        unsubscribe_detected_at=None if will_renew else _detected(state.unsubscribe),
        billing_issue_detected_at=(
            None if status is Status.ACTIVE else _detected(state.billing_issue)
        ),
        revoked_at=revoked_at if status is Status.REVOKED else None,
        ownership=latest.ownership if latest is not None else Ownership.PURCHASED,
        superseded=state.superseded_by is not None,
        app=state.app,
        price=latest.price if latest is not None else None,
    )


def grants_access(kind: PurchaseKind) -> bool:
    """Consumables are used up on purchase; they never hold an entitlement open."""
    return kind not in _NO_ACCESS_KINDS


# --- registers -----------------------------------------------------------------------


_NEVER = datetime.min.replace(tzinfo=UTC)
_FOREVER = datetime.max.replace(tzinfo=UTC)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _transaction_order(t: TransactionFacts) -> tuple[datetime, datetime, str]:
    """Which transaction is the current one: the latest purchase (store times, compared with
    each other only), then the latest expiry; not yet paid sorts first."""
    return (t.purchased_at or _NEVER, t.expires_at or _FOREVER, t.transaction_id)


def _first_stated(t: TransactionFacts) -> datetime:
    return t.first_stated_at or t.signed_at


def _version_key(t: TransactionFacts) -> tuple[datetime, bool, str]:
    """Of two copies of one transaction the later-signed wins; ties break on content so
    that the choice is the same whatever order the copies arrive in."""
    return (t.signed_at, t.revoked_at is not None, repr(replace(t, first_stated_at=None)))


def _merge_transaction(
    known: tuple[TransactionFacts, ...], incoming: TransactionFacts, stated_at: datetime
) -> tuple[TransactionFacts, ...]:
    by_id = {t.transaction_id: t for t in known}
    # The earliest statement that carried the transaction: the statement's own time or the
    # copy's signature, whichever is earlier (both on the statement clock).
    first = min(stated_at, incoming.signed_at, _first_stated(incoming))
    old = by_id.get(incoming.transaction_id)
    if old is not None:
        first = min(first, _first_stated(old))
    winner = incoming if old is None or _version_key(incoming) > _version_key(old) else old
    by_id[incoming.transaction_id] = replace(winner, first_stated_at=first)
    ordered = sorted(by_id.values(), key=_transaction_order, reverse=True)
    return tuple(ordered[: PurchaseState.MAX_TRANSACTIONS])


def _newer_renewal(old: RenewalFacts | None, new: RenewalFacts) -> RenewalFacts:
    if old is None:
        return new
    return new if (new.signed_at, repr(new)) > (old.signed_at, repr(old)) else old


def _status_is_newer(state: PurchaseState, at: datetime, status: Status) -> bool:
    if state.store_status is None or state.store_status_at is None:
        return True
    return (at, status.value) > (state.store_status_at, state.store_status.value)


def _observe(history: FlagHistory, at: datetime, is_set: bool) -> FlagHistory:
    """Record one flag statement; every time compared here is the store's own."""
    if history.cleared_at is not None and at <= history.cleared_at:
        return history  # older than the last "clear": cannot matter any more
    if not is_set:
        return FlagHistory(cleared_at=at, set_times=tuple(t for t in history.set_times if t > at))
    times = tuple(sorted(set(history.set_times) | {at}))[: FlagHistory.MAX_SET_TIMES]
    return FlagHistory(cleared_at=history.cleared_at, set_times=times)


def _detected(history: FlagHistory) -> datetime | None:
    return history.set_times[0] if history.set_times else None


def _derive_status(
    state: PurchaseState, latest: TransactionFacts | None, renewal: RenewalFacts | None
) -> Status:
    """The store's own verdict unless the current transaction was first stated after it
    (a new period the verdict cannot know about); otherwise what the renewal facts and the
    transaction say. Both sides of each comparison are on the statement clock, so a
    pending purchase reads pending whatever the store's purchase time says."""
    since = _first_stated(latest) if latest is not None else None
    if (
        state.store_status is not None
        and state.store_status_at is not None
        and (since is None or state.store_status_at >= since)
    ):
        return state.store_status
    if (
        renewal is not None
        and renewal.in_billing_retry
        and (since is None or renewal.signed_at >= since)
    ):
        return Status.GRACE_PERIOD if renewal.grace_period_expires_at else Status.BILLING_RETRY
    return Status.ACTIVE
