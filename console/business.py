"""The numbers behind the business page: daily series over the last 30 days — active store
subscriptions, trial starts and conversions, refunds and billing issues, notification
latency, revenue and MRR per currency — and what runs today: paying subscriptions, trials
and grants. The rows come from services/console_reads.py (rollups and partial indexes) and
services/revenue.py (the same figures as GET /v1/revenue); the revenue table's CSV is here."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from console.why import STORE_NAMES
from entitlements.access import Catalog
from entitlements.money import amount_text
from services.console_reads import BusinessRows

REVENUE_COLUMNS = ("date", "store", "currency", "gross", "refunded", "charges", "refunds")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Series:
    """Days (oldest first) and, per label, one value a day; `text`, when given, the exact
    figures the table shows (money), one per value."""

    days: list[datetime]
    values: dict[str, list[float]]
    text: dict[str, list[str]] = field(default_factory=dict)


def series(rows: BusinessRows, catalog: Catalog, revenue: Mapping[str, Any]) -> dict[str, Series]:
    """Every chart's series from the page's rows and `revenue` (Revenue.between's answer
    for the window, MRR as of today)."""
    days = rows.days
    return {
        "revenue": _revenue(days, revenue["days"]),
        "mrr": _mrr(days, rows.mrr),
        "mix": _mix(days[-1], revenue["mrr"], rows.trials, rows.grants),
        "active": _active(days, rows.active, catalog),
        "trials": _daily(
            days, rows.transitions, {"trial starts": "trials", "conversions": "conversions"}
        ),
        "refunds": _daily(
            days, rows.transitions, {"refunds": "refunds", "billing issues": "billing_issues"}
        ),
        "latency": _latency(days, rows.latency),
    }


def revenue_csv(days: list[dict[str, Any]]) -> str:
    """The revenue table (GET /v1/revenue's `days`) as CSV, one row per day, store and
    currency; no cell starts as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REVENUE_COLUMNS)
    for row in days:
        writer.writerow([_cell(str(row[c])) for c in REVENUE_COLUMNS])
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _dates(days: list[datetime]) -> list[date]:
    return [d.astimezone(UTC).date() for d in days]


def _revenue(days: list[datetime], rows: list[dict[str, Any]]) -> Series:
    """Gross and refunded per currency and day (the stores summed)."""
    index = {d: i for i, d in enumerate(_dates(days))}
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(days))
    for row in rows:
        i = index.get(date.fromisoformat(row["date"]))
        if i is None:
            continue
        sums[f"{row['currency']} gross"][i] += Decimal(row["gross"])
        sums[f"{row['currency']} refunded"][i] += Decimal(row["refunded"])
    return _money(days, dict(sorted(sums.items())), cents=False)


def _mrr(days: list[datetime], rows: list[dict[str, Any]]) -> Series:
    """MRR per currency at the end of each day: the sum of its changes up to the day."""
    dates = _dates(days)
    before: dict[str, Decimal] = defaultdict(Decimal)
    changes: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        if row["day"] is None:
            before[row["currency"]] += row["amount"]
        else:
            changes[row["currency"]][row["day"]] += row["amount"]
    sums: dict[str, list[Decimal]] = {}
    for currency in sorted({*before, *changes}):
        total, line = before[currency], []
        for d in dates:
            total += changes[currency].get(d, Decimal(0))
            line.append(total)
        if any(line):
            sums[currency] = line
    return _money(days, sums, cents=True)


def _money(days: list[datetime], sums: dict[str, list[Decimal]], *, cents: bool) -> Series:
    return Series(
        days,
        {label: [float(v) for v in line] for label, line in sums.items()},
        {label: [amount_text(v, cents=cents) for v in line] for label, line in sums.items()},
    )


def _mix(today: datetime, mrr: list[dict[str, Any]], trials: int, grants: int) -> Series:
    """Today's paying subscriptions (MRR's, every currency), trials and grants."""
    paying = sum(int(row["subscriptions"]) for row in mrr)
    counts = {"paying subscriptions": paying, "trials": trials, "grants": grants}
    return Series(
        [today],
        {label: [float(n)] for label, n in counts.items()},
        {label: [str(n)] for label, n in counts.items()},
    )


def _active(days: list[datetime], rows: list[dict[str, Any]], catalog: Catalog) -> Series:
    """Store subscriptions giving access at the end of each day, by entitlement and store."""
    dates = _dates(days)
    before: dict[tuple[str, str], int] = defaultdict(int)
    changes: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if not catalog.defines(row["entitlement"]):
            continue
        key = (row["entitlement"], row["store"])
        if row["day"] is None:
            before[key] += int(row["change"])
        else:
            changes[key][row["day"]] += int(row["change"])
    values: dict[str, list[float]] = {}
    for key in sorted({*before, *changes}):
        total, line = before[key], []
        for d in dates:
            total += changes[key].get(d, 0)
            line.append(float(total))
        if any(line):
            values[f"{key[0]} · {STORE_NAMES.get(key[1], key[1])}"] = line
    return Series(days, dict(sorted(values.items())))


def _daily(days: list[datetime], rows: list[dict[str, Any]], columns: Mapping[str, str]) -> Series:
    by_date = {row["day"]: row for row in rows}
    values = {
        label: [float(by_date[d][column]) if d in by_date else 0.0 for d in _dates(days)]
        for label, column in columns.items()
    }
    return Series(days, values)


def _latency(days: list[datetime], rows: list[dict[str, Any]]) -> Series:
    values: dict[str, list[float]] = {}
    positions = {d: i for i, d in enumerate(_dates(days))}
    for row in rows:
        label = STORE_NAMES.get(row["store"], row["store"])
        line = values.setdefault(label, [0.0] * len(days))
        i = positions.get(row["day"].astimezone(UTC).date())
        if i is not None:
            line[i] = round(float(row["median_seconds"]), 1)
    return Series(days, dict(sorted(values.items())))
