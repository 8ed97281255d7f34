"""The pure state machine: fold StoreEvents into a PurchaseState and derive its view.

`apply` is a join of "newest statement wins" registers (per transaction, renewal intent,
store status) plus sticky revocation, so it is idempotent, and the final state does not
depend on the order statements arrive in: duplicates and late deliveries converge.
No I/O, no clock: `now` is passed in where time matters.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from entitlements.model import (
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

_BILLING_ISSUE = frozenset({Status.GRACE_PERIOD, Status.BILLING_RETRY, Status.ON_HOLD})
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
        )
    state = current
    if event.transaction is not None:
        state = replace(
            state, transactions=_merge_transaction(state.transactions, event.transaction)
        )
    if event.renewal is not None:
        renewal = _newer_renewal(state.renewal, event.renewal)
        state = replace(
            state,
            renewal=renewal,
            unsubscribe=_observe(
                state.unsubscribe, event.renewal.signed_at, not event.renewal.will_renew
            ),
        )
    if event.status is not None and _status_is_newer(state, event.occurred_at, event.status):
        state = replace(state, store_status=event.status, store_status_at=event.occurred_at)
    billing = _billing_observation(event)
    if billing is not None:
        state = replace(
            state, billing_issue=_observe(state.billing_issue, event.occurred_at, billing)
        )
    if event.revoke:
        revoked_at = event.occurred_at
        if state.revoked_at is not None:
            revoked_at = min(state.revoked_at, revoked_at)
        state = replace(state, revoked_at=revoked_at)
    if event.supersedes is not None and state.supersedes is None:
        state = replace(state, supersedes=event.supersedes)
    return replace(
        state,
        updated_at=max(state.updated_at, event.occurred_at),
        environment=state.environment or event.environment,
    )


def mark_superseded(state: PurchaseState, by_purchase_id: str) -> PurchaseState:
    """Record that a newer purchase replaced this one (Google linkedPurchaseToken)."""
    if state.superseded_by is not None and state.superseded_by >= by_purchase_id:
        return state  # deterministic choice when two tokens claim the same predecessor
    return replace(state, superseded_by=by_purchase_id)


def view(state: PurchaseState) -> PurchaseView:
    """Derive the contract's fields for one purchase from its stored state.

    Time-dependent parts (`active`, expiry of an active period) are applied at read time by
    `entitlements.access`, not here.
    """
    latest = state.transactions[0] if state.transactions else None
    renewal = state.renewal
    revoked_at = state.revoked_at
    if latest is not None and latest.revoked_at is not None:
        revoked_at = latest.revoked_at if revoked_at is None else min(revoked_at, latest.revoked_at)

    status = _derive_status(state, latest, renewal)
    if revoked_at is not None:
        status = Status.REVOKED
    elif state.store_status is Status.REVOKED:
        revoked_at = state.store_status_at
    elif state.superseded_by is not None:
        status = Status.EXPIRED

    grace = None
    if status is Status.GRACE_PERIOD and renewal is not None:
        grace = renewal.grace_period_expires_at
    kind = latest.kind if latest is not None else PurchaseKind.SUBSCRIPTION
    return PurchaseView(
        store=state.store,
        purchase_id=state.purchase_id,
        product_id=latest.product_id if latest is not None else "",
        kind=kind,
        status=status,
        period_type=latest.period_type if latest is not None else PeriodType.NORMAL,
        will_renew=bool(renewal.will_renew) if renewal is not None else False,
        expires_at=latest.expires_at if latest is not None else None,
        grace_period_expires_at=grace,
        purchased_at=latest.purchased_at if latest is not None else None,
        is_sandbox=state.is_sandbox,
        unsubscribe_detected_at=_detected(state.unsubscribe),
        billing_issue_detected_at=_detected(state.billing_issue),
        revoked_at=revoked_at if status is Status.REVOKED else None,
        ownership=latest.ownership if latest is not None else Ownership.PURCHASED,
        superseded=state.superseded_by is not None,
    )


def grants_access(kind: PurchaseKind) -> bool:
    """Consumables are used up on purchase; they never hold an entitlement open."""
    return kind not in _NO_ACCESS_KINDS


# --- registers -----------------------------------------------------------------------


def _transaction_order(t: TransactionFacts) -> tuple[datetime, datetime, str]:
    """Which transaction is the current one: the latest purchase, then the latest expiry."""
    expires = t.expires_at or datetime.max.replace(tzinfo=t.purchased_at.tzinfo)
    return (t.purchased_at, expires, t.transaction_id)


def _version_key(t: TransactionFacts) -> tuple[datetime, bool, str]:
    """Of two copies of one transaction the later-signed wins; ties break on content so
    that the choice is the same whatever order the copies arrive in."""
    return (t.signed_at, t.revoked_at is not None, repr(t))


def _merge_transaction(
    known: tuple[TransactionFacts, ...], incoming: TransactionFacts
) -> tuple[TransactionFacts, ...]:
    by_id = {t.transaction_id: t for t in known}
    old = by_id.get(incoming.transaction_id)
    if old is None or _version_key(incoming) > _version_key(old):
        by_id[incoming.transaction_id] = incoming
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


def _billing_observation(event: StoreEvent) -> bool | None:
    """True: the statement shows a billing problem; False: it shows a healthy, paid
    subscription; None: it says nothing about billing."""
    if event.status in _BILLING_ISSUE:
        return True
    if event.renewal is not None and event.renewal.in_billing_retry:
        return True
    if event.status is Status.ACTIVE:
        return False
    return None


def _observe(history: FlagHistory, at: datetime, is_set: bool) -> FlagHistory:
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
    """The store's own verdict when it is at least as new as the current transaction;
    otherwise what the renewal facts and the transaction say."""
    newest_purchase = latest.purchased_at if latest is not None else None
    if (
        state.store_status is not None
        and state.store_status_at is not None
        and (newest_purchase is None or state.store_status_at >= newest_purchase)
    ):
        return state.store_status
    if (
        renewal is not None
        and renewal.in_billing_retry
        and (newest_purchase is None or renewal.signed_at >= newest_purchase)
    ):
        return Status.GRACE_PERIOD if renewal.grace_period_expires_at else Status.BILLING_RETRY
    return Status.ACTIVE
