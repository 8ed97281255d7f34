"""The business page's daily rollup, as pure rules (issue 22): what replacing a customer's
change-feed snapshot changes in feed_daily per day, entitlement and store — active
subscriptions, trial starts, conversions, refunds, billing issues. storage/console_metrics.py
writes and reads the rows; migrations/0016 backfilled them with the same rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

BILLING_ISSUES = ("grace_period", "billing_retry", "on_hold")


@dataclass(frozen=True, slots=True)
class FeedDay:
    """One feed_daily key's changes."""

    day: date
    entitlement: str
    store: str
    active_change: int = 0
    trials: int = 0
    conversions: int = 0
    refunds: int = 0
    billing_issues: int = 0


def feed_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], at: datetime
) -> list[FeedDay]:
    """What replacing a customer's snapshot `old` (None: no event yet) by `new` at `at`
    changes in feed_daily, the rows with a change only. The same rules as the backfill of
    migrations/0016: `old` stops counting at `at` (unless its access ended before), `new`
    counts from `at` to its end; transitions compare each entitlement with `old`."""
    keys: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    today = _day(at)
    for name, was in (old or {}).items():
        gives, ends = _access(was, at)
        if gives:  # its -1 was on the day it ends (or nowhere): move it to today
            keys[(today, name, was["store"])][0] -= 1
            if ends is not None:
                keys[(_day(ends), name, was["store"])][0] += 1
    for name, now in new.items():
        store = now["store"]
        gives, ends = _access(now, at)
        if gives:
            keys[(today, name, store)][0] += 1
            if ends is not None:
                keys[(_day(ends), name, store)][0] -= 1
        prev = (old or {}).get(name) or {}
        pt, st = now.get("period_type"), now.get("status")
        prev_pt, prev_st = prev.get("period_type"), prev.get("status")
        row = keys[(today, name, store)]
        row[1] += pt == "trial" and prev_pt != "trial"
        row[2] += prev_pt == "trial" and pt in ("intro", "normal") and st == "active"
        row[3] += st == "revoked" and prev_st != "revoked" and store != "promotional"
        row[4] += st in BILLING_ISSUES and prev_st not in BILLING_ISSUES
    return [FeedDay(*key, *values) for key, values in sorted(keys.items()) if any(values)]


def combined(changes: list[FeedDay]) -> list[FeedDay]:
    """The changes summed per key, in key order (the lock order), zeros left out."""
    sums: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for c in changes:
        row = sums[(c.day, c.entitlement, c.store)]
        for i, v in enumerate(
            (c.active_change, c.trials, c.conversions, c.refunds, c.billing_issues)
        ):
            row[i] += v
    return [FeedDay(*key, *values) for key, values in sorted(sums.items()) if any(values)]


def _access(snapshot: Mapping[str, Any], at: datetime) -> tuple[bool, datetime | None]:
    """Whether the snapshot counts as giving access from `at`, and until when (None: no end)."""
    if not snapshot.get("active") or snapshot.get("store") == "promotional":
        return False, None
    if snapshot.get("status") == "grace_period":
        ends = _instant(snapshot.get("grace_period_expires_at"))
        if ends is None:
            return False, None
    else:
        ends = _instant(snapshot.get("expires_at"))
    return (ends is None or ends > at), ends


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
